// Package lports chooses uvsd's FULLNAT local port range and keeps it
// out of the host's own ports, from the sysctls and /proc socket tables
// it parses. It links nothing of uvs, so its fuzz target runs in a small
// binary.
//
// A FULLNAT connection leaves the director from LIP:lport, and uvsd owns
// every TCP, UDP and SCTP packet to a local address whose port is in the
// FULLNAT range (ownership.Set.LocalRanges). A local address is usually
// one of the host's addresses, so a port the host's own sockets use there
// would lose its packets to uvsd: an outgoing connection whose ephemeral
// port the kernel picked in the range (net.ipv4.ip_local_port_range), or
// a server listening on a port in the range. So the range is kept out of
// both:
//
//   - chosen (--lport-min and --lport-max both 0): the longest run of
//     ports in 1024–65535 outside ip_local_port_range and outside every
//     port a TCP socket listens on or a UDP socket is bound to when uvsd
//     starts (multicast sync messages go to their group, never to a
//     local address). With Linux's default 32768–60999 and nothing
//     listening above 1023, that is 1024–32767: 31 744 ports per (local
//     address, real server, port), against 4 536 for the old fixed
//     61000–65535.
//   - given: refused, naming both ranges, when it overlaps
//     ip_local_port_range (the host would pick ports in it for its own
//     connections and lose their replies). Narrow ip_local_port_range, or
//     reserve the overlap with net.ipv4.ip_local_reserved_ports, first:
//     ports reserved there are taken out of the check, as the kernel takes
//     them out of its choice.
//
// Ports the host starts listening on after uvsd started are not seen: keep
// services on the director's local addresses below 1024, or give the
// range explicitly.
package lports

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// portRange is an inclusive range of ports.
type portRange struct{ lo, hi uint16 }

func (r portRange) String() string { return fmt.Sprintf("%d-%d", r.lo, r.hi) }

func (r portRange) overlaps(o portRange) bool { return r.lo <= o.hi && o.lo <= r.hi }

// lportFloor is the lowest port a chosen range starts at: below it are
// the well-known ports.
const lportFloor = 1024

// Sysctl paths of the host's port choice.
const (
	portRangePath    = "/proc/sys/net/ipv4/ip_local_port_range"
	reservedPortPath = "/proc/sys/net/ipv4/ip_local_reserved_ports"
)

// procNetFiles are the socket tables whose bound ports a chosen range
// avoids, with whether only listening sockets count (TCP) or every bound
// one (UDP).
var procNetFiles = []struct {
	path   string
	listen bool
}{
	{"/proc/self/net/tcp", true}, {"/proc/self/net/tcp6", true},
	{"/proc/self/net/udp", false}, {"/proc/self/net/udp6", false},
}

// Choose returns the FULLNAT local port range for --lport-min and
// --lport-max (both 0: chosen) in the current network namespace.
func Choose(min, max uint16) (uint16, uint16, error) {
	host, err := readPortRange(portRangePath)
	if err != nil {
		return 0, 0, err
	}
	var reserved []portRange
	if b, err := os.ReadFile(reservedPortPath); err == nil {
		if reserved, err = parsePortList(strings.TrimSpace(string(b))); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", reservedPortPath, err)
		}
	}
	var used []uint16
	if min == 0 && max == 0 {
		for _, f := range procNetFiles {
			b, err := os.ReadFile(f.path)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					continue // no IPv6
				}
				return 0, 0, err
			}
			used = append(used, boundPorts(b, f.listen)...)
		}
	}
	r, err := chooseLocalPorts(min, max, host, reserved, used)
	return r.lo, r.hi, err
}

// chooseLocalPorts is Choose given the host's ephemeral range, its
// reserved ports and the ports its sockets use.
func chooseLocalPorts(min, max uint16, host portRange, reserved []portRange, used []uint16) (portRange, error) {
	if min != 0 || max != 0 {
		r := portRange{min, max}
		if min == 0 || max < min {
			return r, fmt.Errorf("FULLNAT local port range %s: want 1 <= lowest <= highest", r)
		}
		if p, ok := unreservedOverlap(r, host, reserved); ok {
			return r, fmt.Errorf("FULLNAT local port range %s overlaps net.ipv4.ip_local_port_range %s (port %d, not in "+
				"net.ipv4.ip_local_reserved_ports): the host would give its own connections ports whose replies uvsd takes; "+
				"choose a range outside %s, narrow ip_local_port_range, or reserve the overlap in ip_local_reserved_ports",
				r, host, p, host)
		}
		return r, nil
	}
	var taken [1 << 16]bool
	for p := int(host.lo); p <= int(host.hi); p++ {
		taken[p] = true
	}
	for _, p := range used {
		taken[p] = true
	}
	best, lo := portRange{}, -1
	for p := lportFloor; p <= 1<<16; p++ {
		if p < 1<<16 && !taken[p] {
			if lo < 0 {
				lo = p
			}
			continue
		}
		if lo >= 0 && (best.hi == 0 || p-1-lo > int(best.hi)-int(best.lo)) {
			best = portRange{uint16(lo), uint16(p - 1)}
		}
		lo = -1
	}
	if best.hi == 0 {
		return best, fmt.Errorf("no FULLNAT local port free in %d-65535 outside net.ipv4.ip_local_port_range %s and the ports in use",
			lportFloor, host)
	}
	return best, nil
}

// unreservedOverlap returns the first port of r in host that is not in
// reserved.
func unreservedOverlap(r, host portRange, reserved []portRange) (uint16, bool) {
	if !r.overlaps(host) {
		return 0, false
	}
	for p := int(max(r.lo, host.lo)); p <= int(min(r.hi, host.hi)); p++ {
		if !slices.ContainsFunc(reserved, func(x portRange) bool { return int(x.lo) <= p && p <= int(x.hi) }) {
			return uint16(p), true
		}
	}
	return 0, false
}

// readPortRange reads ip_local_port_range ("32768\t60999").
func readPortRange(path string) (portRange, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return portRange{}, err
	}
	r, err := parsePortRange(string(b))
	if err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// parsePortRange parses ip_local_port_range: two ports separated by
// blanks, lowest first.
func parsePortRange(s string) (portRange, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return portRange{}, fmt.Errorf("port range %q: want two ports", s)
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 16)
	hi, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || lo > hi {
		return portRange{}, fmt.Errorf("port range %q: want two ports, lowest first", s)
	}
	return portRange{uint16(lo), uint16(hi)}, nil
}

// parsePortList parses ip_local_reserved_ports: comma-separated ports and
// ranges ("8080,10000-10005"), possibly empty.
func parsePortList(s string) ([]portRange, error) {
	var out []portRange
	if s == "" {
		return nil, nil
	}
	for _, item := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(item, "-")
		if !isRange {
			b = a
		}
		lo, err1 := strconv.ParseUint(a, 10, 16)
		hi, err2 := strconv.ParseUint(b, 10, 16)
		if err1 != nil || err2 != nil || lo > hi {
			return nil, fmt.Errorf("port list %q: bad item %q", s, item)
		}
		out = append(out, portRange{uint16(lo), uint16(hi)})
	}
	return out, nil
}

// boundPorts returns the local ports of a /proc/net/{tcp,udp}[6] table:
// of listening sockets (state 0A) if listen, else of every socket. Lines
// that do not parse are skipped.
func boundPorts(b []byte, listen bool) []uint16 {
	var out []uint16
	for i, line := range bytes.Split(b, []byte("\n")) {
		f := bytes.Fields(line)
		if i == 0 || len(f) < 4 {
			continue // header
		}
		if listen && string(f[3]) != "0A" {
			continue
		}
		_, port, ok := bytes.Cut(f[1], []byte(":"))
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(string(port), 16, 16)
		if err != nil || p == 0 {
			continue
		}
		out = append(out, uint16(p))
	}
	return out
}
