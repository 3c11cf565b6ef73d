package ipvsadm

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/uvs-lb/uvs/spec"
)

// This file reproduces the C library conversions ipvsadm relies on
// (strtol, atoi, inet_aton, inet_pton, inet_ntop), so that the same
// strings are accepted and rejected. There is no DNS: where ipvsadm falls
// back to gethostbyname/getservbyname, uvs accepts numeric addresses only
// and a small builtin table of service names (see servicePorts).

// isCSpace reports whether c is a C-locale isspace() character.
func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// strtol10 mimics strtol(s, &end, 10) followed by ipvsadm's
// "*end == '\0' && end != s && errno != ERANGE" test.
func strtol10(s string) (int64, bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var v uint64
	overflow := false
	for i < len(s) && isDigit(s[i]) {
		d := uint64(s[i] - '0')
		if v > (1<<63)/10 || (v == (1<<63)/10 && d > (1<<63)%10) {
			overflow = true
		}
		v = v*10 + d
		i++
	}
	if i == start || i != len(s) || overflow {
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}

// stringToNumber is ipvsadm's string_to_number: a base-10 long in
// [lo, hi], or ok=false.
func stringToNumber(s string, lo, hi int64) (int64, bool) {
	n, ok := strtol10(s)
	if !ok || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

// atoi mimics C atoi: leading space, optional sign, digits, stop at the
// first other byte; no digits gives 0. Values are clamped to int32.
func atoi(s string) int64 {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	var v int64
	for i < len(s) && isDigit(s[i]) {
		if v < 1<<40 {
			v = v*10 + int64(s[i]-'0')
		}
		i++
	}
	if neg {
		v = -v
	}
	return int64(int32(v))
}

// strtoul0 parses an unsigned number with C base-0 rules (0x hex, 0 octal,
// decimal) from the start of s, which begins with a digit. It returns the
// value, the number of bytes consumed and whether it overflowed 32 bits.
func strtoul0(s string) (uint64, int, bool) {
	base := uint64(10)
	i := 0
	if s[0] == '0' {
		base = 8
		i = 1
		if len(s) > 2 && (s[1] == 'x' || s[1] == 'X') && isHex(s[2]) {
			base = 16
			i = 2
		}
	}
	var v uint64
	big := false
	for ; i < len(s); i++ {
		d, ok := digitVal(s[i])
		if !ok || d >= base {
			break
		}
		v = v*base + d
		if v > 0xffffffff {
			big = true
			v = 0x100000000
		}
	}
	return v, i, big
}

func isHex(c byte) bool { _, ok := digitVal(c); return ok }

func digitVal(c byte) (uint64, bool) {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0'), true
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return uint64(c-'A') + 10, true
	}
	return 0, false
}

// inetAton mimics glibc inet_aton: 1 to 4 dot-separated parts in C base-0
// notation, the last part filling the remaining bytes; trailing white space
// ends the address. It returns the address in host byte order.
func inetAton(s string) (uint32, bool) {
	var parts [4]uint64
	n := 0
	i := 0
	var val uint64
	for {
		if i >= len(s) || !isDigit(s[i]) {
			return 0, false
		}
		v, used, big := strtoul0(s[i:])
		if big {
			return 0, false
		}
		val = v
		i += used
		if i < len(s) && s[i] == '.' {
			if n > 2 || val > 0xff {
				return 0, false
			}
			parts[n] = val
			n++
			i++
			continue
		}
		break
	}
	if i < len(s) && !isCSpace(s[i]) {
		return 0, false
	}
	maxLast := [4]uint64{0xffffffff, 0xffffff, 0xffff, 0xff}
	if val > maxLast[n] {
		return 0, false
	}
	var out uint64
	for k := 0; k < n; k++ {
		out |= parts[k] << (24 - 8*uint(k))
	}
	return uint32(out | val), true
}

// inetPton6 mimics inet_pton(AF_INET6, ...): a literal IPv6 address, no zone.
func inetPton6(s string) (netip.Addr, bool) {
	if !strings.Contains(s, ":") || strings.Contains(s, "%") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return netip.Addr{}, false
	}
	return a, true
}

func addrFrom4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// servicePort is the builtin stand-in for getservbyname(3): uvs does no
// /etc/services or NSS lookups. Names are accepted for TCP, UDP and SCTP.
func servicePort(name string) (uint16, bool) {
	switch name {
	case "ftp":
		return 21, true
	case "ssh":
		return 22, true
	case "smtp":
		return 25, true
	case "domain":
		return 53, true
	case "http":
		return 80, true
	case "https":
		return 443, true
	}
	return 0, false
}

// serviceToPort is ipvsadm's service_to_port over the builtin table; like
// getservbyname it needs a transport protocol.
func serviceToPort(name string, proto spec.Proto) (uint16, bool) {
	if proto != spec.ProtoTCP && proto != spec.ProtoUDP && proto != spec.ProtoSCTP {
		return 0, false
	}
	return servicePort(name)
}

// parsedService is the result of parseService.
type parsedService struct {
	addr    netip.Addr
	port    uint16
	hasPort bool
}

// parseService is ipvsadm's parse_service for "host[:port]" and
// "[v6addr]:port". proto selects the service-name table. Host names other
// than numeric addresses are rejected (no DNS).
func parseService(buf string, proto spec.Proto) (parsedService, bool) {
	var r parsedService
	if buf == "" || allDigits(buf) {
		// str_is_digit("") is true in ipvsadm too.
		return r, false
	}
	host := buf
	portStr := ""
	havePort := false
	if buf[0] == '[' {
		end := strings.IndexByte(buf, ']')
		if end < 0 || end+1 >= len(buf) || buf[end+1] != ':' {
			return r, false
		}
		host = buf[1:end]
		portStr = buf[end+2:]
		havePort = true
	}
	if a, ok := inetPton6(host); ok {
		r.addr = a
	} else {
		// Not IPv6: the text after the last ':' of what is left is the
		// port. With brackets the port found above is dropped, as
		// ipvsadm does ("[1.2.3.4]:80" is 1.2.3.4 without a port).
		havePort = false
		portStr = ""
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			portStr = host[i+1:]
			host = host[:i]
			havePort = true
		}
		v, ok := inetAton(host)
		if !ok {
			return r, false
		}
		r.addr = addrFrom4(v)
	}
	if havePort {
		r.hasPort = true
		if n, ok := stringToNumber(portStr, 0, 65535); ok {
			r.port = uint16(n)
		} else if p, ok := serviceToPort(portStr, proto); ok {
			r.port = p
		} else {
			return r, false
		}
	}
	return r, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// ntop formats an address as glibc inet_ntop does: dotted quad for IPv4;
// for IPv6 RFC 5952 compression, except that an address whose first 96
// bits are zero (and the last 32 are not 0.0.0.0/0.0.0.1-style small
// values, see below) is written "::a.b.c.d" like glibc does.
func ntop(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	b := a.As16()
	zero96 := true
	for i := 0; i < 12; i++ {
		if b[i] != 0 {
			zero96 = false
			break
		}
	}
	// glibc: the zero run must be exactly words 0..5 (word 6 non-zero).
	if zero96 && (b[12] != 0 || b[13] != 0) {
		return "::" + netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}).String()
	}
	return a.WithZone("").String()
}

// addrPortName formats addr:port as ipvsadm's addrport_to_anyname in
// numeric mode: "a.b.c.d:port" or "[v6]:port".
func addrPortName(a netip.Addr, port uint16) string {
	p := strconv.FormatUint(uint64(port), 10)
	if a.Is4() {
		return ntop(a) + ":" + p
	}
	return "[" + ntop(a) + "]:" + p
}
