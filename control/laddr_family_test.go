package control

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/spec"
)

// ipvsadmCorpusDir holds the ipvsadm scripts of other projects.
const ipvsadmCorpusDir = "../../shared/corpus/ipvsadm"

// TestFullNATAcrossFamilies: a real server of the other family is
// accepted for FULLNAT (-b) services only, as DPVS's ipvsadm accepts it
// (NAT64); other methods keep ipvsadm's error. A non-empty local-address
// pool must hold an address of the real server's family, when the real
// server is added and when a local address is removed; an error names
// both and changes nothing.
func TestFullNATAcrossFamilies(t *testing.T) {
	st := New(Options{})
	mustRun(t, st, "-A -t [2001::4]:8080 -s rr")
	mustRun(t, st, "-a -t [2001::4]:8080 -r 192.168.88.151:80 -b")
	mustRun(t, st, "-A -t 192.168.88.1:80 -s rr")
	mustRun(t, st, "-a -t 192.168.88.1:80 -r [2001::51]:80 -b")
	for _, m := range []string{"-m", "-g", ""} {
		r := runCLI(st, root, "", strings.Fields("-a -t [2001::4]:8080 -r 192.168.88.152:80 "+m)...)
		if r.code == 0 || !strings.Contains(r.err, "Different address family is allowed only for tunneling servers") {
			t.Errorf("%q: code %d stderr %q, want ipvsadm's family error", m, r.code, r.err)
		}
	}
	// -i keeps ipvsadm's tunnelling exception.
	mustRun(t, st, "-a -t [2001::4]:8080 -r 192.168.88.160:80 -i")

	// The pool gets an IPv6 address: an IPv4 real server cannot be added.
	mustRun(t, st, "-P -t [2001::4]:8080 -z 2001::1:11")
	before := st.Snapshot().Version
	r := runCLI(st, root, "", strings.Fields("-a -t [2001::4]:8080 -r 192.168.88.152:80 -b")...)
	if r.code == 0 || !strings.Contains(r.err, "192.168.88.152:80") || !strings.Contains(r.err, "no IPv4 local address") {
		t.Errorf("IPv4 real server with an IPv6-only pool: code %d stderr %q", r.code, r.err)
	}
	if st.Snapshot().Version != before {
		t.Errorf("a refused command changed the snapshot")
	}
	// With an IPv4 local address it can.
	mustRun(t, st, "-P -t [2001::4]:8080 -z 192.168.88.241")
	mustRun(t, st, "-a -t [2001::4]:8080 -r 192.168.88.152:80 -b")
	// The IPv4 local address is the last one the IPv4 real servers have.
	r = runCLI(st, root, "", strings.Fields("-Q -t [2001::4]:8080 -z 192.168.88.241")...)
	if r.code == 0 || !strings.Contains(r.err, "no IPv4 local address") {
		t.Errorf("removing the last IPv4 local address: code %d stderr %q", r.code, r.err)
	}
	mustRun(t, st, "-Q -t [2001::4]:8080 -z 2001::1:11") // the IPv6 one is free to go
	for _, s := range st.Services() {
		if s.Config.Key.Addr == netip.MustParseAddr("2001::4") {
			if !slices.Equal(s.Config.LocalAddrs, []netip.Addr{netip.MustParseAddr("192.168.88.241")}) {
				t.Errorf("pool %v", s.Config.LocalAddrs)
			}
			if len(s.Dests) != 3 {
				t.Errorf("%d real servers, want 3", len(s.Dests))
			}
		}
	}
	// The state's own check, without the parser's.
	err := st.Apply(&ipvsadm.Command{Kind: ipvsadm.CmdAddServer,
		Service: spec.Service{Key: spec.ServiceKey{Proto: spec.ProtoTCP, Addr: netip.MustParseAddr("2001::4"), Port: 8080}},
		Dest:    spec.Dest{Addr: netip.MustParseAddr("2001::77"), Port: 80, Fwd: spec.FwdFullNAT, Weight: 1}})
	if !errors.Is(err, syscall.EAFNOSUPPORT) || !strings.Contains(err.Error(), "[2001::77]:80") {
		t.Errorf("IPv6 real server with an IPv4-only pool: %v", err)
	}
}

// TestDPVSCorpusScript applies every ipvsadm line of DPVS's FULLNAT
// check-list script (IPv4, IPv6 and NAT64 services) through uvsadm's
// parser and the control state. The script uses two DPVS options uvsadm
// does not have — -j (SYN proxy) on -A and -F (the local address's
// interface) on -P —; uvsadm must refuse them naming the option, and the
// line without them must apply. Every other line must apply as it is.
func TestDPVSCorpusScript(t *testing.T) {
	name := filepath.Join(ipvsadmCorpusDir, "dpvs-checklist_setup-fullnat-ipv6.sh")
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("corpus missing: %v", err)
	}
	st := New(Options{})
	lines := 0
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "ipvsadm" {
			continue
		}
		lines++
		args := f[1:]
		for _, opt := range [...]string{"-j", "-F"} {
			j := slices.Index(args, opt)
			if j < 0 {
				continue
			}
			if _, err := ipvsadm.Parse(args); err == nil || !strings.Contains(err.Error(), opt) {
				t.Errorf("line %d %q: %v, want an error naming %s", i+1, line, err, opt)
			}
			args = slices.Delete(slices.Clone(args), j, min(j+2, len(args)))
		}
		c, err := ipvsadm.Parse(args)
		if err != nil {
			t.Errorf("line %d %q: %v", i+1, line, err)
			continue
		}
		if err := st.Apply(&c); err != nil {
			t.Errorf("line %d %q: %v", i+1, line, err)
		}
	}
	if lines < 60 {
		t.Fatalf("%d ipvsadm lines in %s, want the whole script", lines, name)
	}
	var found bool
	for _, s := range st.Services() {
		if s.Config.Key.Addr != netip.MustParseAddr("2001::4") || s.Config.Key.Proto != spec.ProtoTCP {
			continue
		}
		found = true
		if len(s.Dests) != 4 || len(s.Config.LocalAddrs) != 3 {
			t.Errorf("NAT64 service: %d real servers, %d local addresses; want 4, 3", len(s.Dests), len(s.Config.LocalAddrs))
		}
		for _, d := range s.Dests {
			if !d.Addr().Is4() || d.Fwd() != spec.FwdFullNAT {
				t.Errorf("NAT64 real server %v %v", d.Addr(), d.Fwd())
			}
		}
	}
	if !found {
		t.Error("no [2001::4]:8080 service")
	}
}
