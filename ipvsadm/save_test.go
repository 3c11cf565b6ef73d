package ipvsadm

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/spec"
)

// saveTable is an example table for ipvsadm -S (ipvsadm.c print_service_entry with FMT_RULE), in scrambled order.
func saveTable() []ServiceView {
	gue := dest("192.168.10.1:8080", spec.FwdTunnel, 1)
	gue.TunType, gue.TunPort = spec.TunGUE, 6080
	gre := dest("192.168.11.1:8080", spec.FwdTunnel, 1)
	gre.TunType, gre.TunCsum = spec.TunGRE, spec.TunCsumOn
	masq := dest("192.168.1.3:8080", spec.FwdMasq, 2)
	masq.UThreshold, masq.LThreshold = 100, 10 // not saved
	udp := spec.Service{Key: spec.ServiceKey{Proto: spec.ProtoUDP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 53},
		Scheduler: "rr", Persistent: true, Timeout: 360, Netmask: 0xffffff00, OPS: true}
	fwm1 := spec.Service{Key: spec.ServiceKey{FWMark: 1, IPv6: true, Proto: spec.ProtoTCP},
		Scheduler: "wlc", Persistent: true, Timeout: 360, Netmask: 64}
	fwm7 := spec.Service{Key: spec.ServiceKey{FWMark: 7, Proto: spec.ProtoTCP},
		Scheduler: "sh", Flags: spec.SchedFlag1 | spec.SchedFlag2, Netmask: 0xffffffff}
	return []ServiceView{
		{Service: fwm7, Dests: []DestView{{Dest: dest("192.168.1.9:0", spec.FwdTunnel, 0)}}},
		{Service: udp, Dests: []DestView{{Dest: dest("192.168.1.2:53", spec.FwdLocal, 1)}}},
		{Service: tcpSvc("10.0.0.1:8080", "rr"), Dests: []DestView{{Dest: gre}, {Dest: gue}}},
		{Service: fwm1},
		{Service: tcpSvc("10.0.0.1:80", "wlc"), Dests: []DestView{{Dest: masq}, {Dest: dest("192.168.1.2:80", spec.FwdMasq, 1)}}},
	}
}

const saveGolden = `-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r 192.168.1.2:80 -m -w 1
-a -t 10.0.0.1:80 -r 192.168.1.3:8080 -m -w 2
-A -t 10.0.0.1:8080 -s rr
-a -t 10.0.0.1:8080 -r 192.168.10.1:8080 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum
-a -t 10.0.0.1:8080 -r 192.168.11.1:8080 -i -w 1 --tun-type gre --tun-csum
-A -u 10.0.0.1:53 -s rr -p 360 -M 255.255.255.0 -o
-a -u 10.0.0.1:53 -r 192.168.1.2:53 -g -w 1
-A -f 1 -6 -s wlc -p 360 -M 64
-A -f 7 -s sh -b sh-fallback,sh-port
-a -f 7 -r 192.168.1.9:0 -i -w 0 --tun-type ipip
`

func TestFormatSave(t *testing.T) {
	got := render(t, func(b *strings.Builder) error { return FormatSave(b, saveTable(), true) })
	checkGolden(t, "-S -n", got, saveGolden)
}

func TestFormatSaveExtras(t *testing.T) {
	s := tcpSvc("10.0.0.2:80", "wrr")
	s.PE = "sip" // saved even when not persistent
	s.Flags = spec.SchedFlag3
	s.LocalAddrs = []netip.Addr{netip.MustParseAddr("192.168.0.1"), netip.MustParseAddr("2001:db8::9")}
	s6 := spec.Service{Key: spec.ServiceKey{Proto: spec.ProtoSCTP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 9},
		Scheduler: "mh", Flags: spec.SchedFlag1, Persistent: true, Timeout: 10, Netmask: 128}
	// ipvsadm prints " -b " and no name for flag-3 on sh (print_sched_flags).
	sh := tcpSvc("10.0.0.3:80", "sh")
	sh.Flags = spec.SchedFlag3
	tab := []ServiceView{
		{Service: sh},
		{Service: s6},
		{Service: s, Dests: []DestView{{Dest: dest("10.1.0.1:8080", spec.FwdFullNAT, 7)}}},
	}
	want := `-A -t 10.0.0.2:80 -s wrr --pe sip -b flag-3
-a -t 10.0.0.2:80 -r 10.1.0.1:8080 -b -w 7
-P -t 10.0.0.2:80 -z 192.168.0.1
-P -t 10.0.0.2:80 -z 2001:db8::9
-A -t 10.0.0.3:80 -s sh -b 
-A --sctp-service [2001:db8::1]:9 -s mh -p 10 -b mh-fallback
`
	got := render(t, func(b *strings.Builder) error { return FormatSave(b, tab, true) })
	checkGolden(t, "save extras", got, want)
}

// applyRules rebuilds a table from the commands of a rules file, the way
// the control plane would (-A adds a service, -a a destination, -P a
// local address).
func applyRules(t *testing.T, cmds []Command) []ServiceView {
	t.Helper()
	var tab []ServiceView
	find := func(k spec.ServiceKey) *ServiceView {
		for i := range tab {
			if tab[i].Service.Key == k {
				return &tab[i]
			}
		}
		t.Fatalf("no service %v", k)
		return nil
	}
	for _, c := range cmds {
		switch c.Kind {
		case CmdAddService:
			tab = append(tab, ServiceView{Service: c.Service})
		case CmdAddServer:
			sv := find(c.Service.Key)
			sv.Dests = append(sv.Dests, DestView{Dest: c.Dest})
		case CmdAddLaddr:
			sv := find(c.Service.Key)
			sv.Service.LocalAddrs = append(sv.Service.LocalAddrs, c.Laddr.Addr)
		default:
			t.Fatalf("unexpected command %v", c.Kind)
		}
	}
	return tab
}

// normalise returns what a save/restore cycle keeps of a table, sorted.
func normalise(tab []ServiceView) []ServiceView {
	out := SortServices(tab)
	for i := range out {
		s := &out[i].Service
		if !s.Persistent {
			s.Timeout = 0
			s.Netmask = spec.DefaultNetmask(keyIs6(s.Key))
		}
		ds := SortDests(out[i].Dests)
		for j := range ds {
			d := &ds[j].Dest
			d.UThreshold, d.LThreshold = 0, 0
			if d.Fwd == spec.FwdLocal {
				d.Fwd = spec.FwdRoute
			}
			if d.Fwd != spec.FwdTunnel {
				d.TunType, d.TunPort, d.TunCsum = 0, 0, 0
			}
			ds[j] = DestView{Dest: *d}
		}
		if len(ds) == 0 {
			ds = nil
		}
		out[i] = ServiceView{Service: *s, Dests: ds}
	}
	return out
}

func TestSaveRoundTrip(t *testing.T) {
	tab := saveTable()
	s := tcpSvc("10.0.0.2:80", "wrr")
	s.LocalAddrs = []netip.Addr{netip.MustParseAddr("192.168.0.1")}
	tab = append(tab, ServiceView{Service: s, Dests: []DestView{{Dest: dest("10.1.0.1:8080", spec.FwdFullNAT, 7)}}})
	text := render(t, func(b *strings.Builder) error { return FormatSave(b, tab, true) })
	cmds, err := ParseRules(strings.NewReader(text), "saved")
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cmds {
		if c.Line != i+1 {
			t.Fatalf("command %d has line %d", i, c.Line)
		}
	}
	got := normalise(applyRules(t, cmds))
	want := normalise(tab)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	again := render(t, func(b *strings.Builder) error { return FormatSave(b, got, true) })
	if again != text {
		t.Fatalf("second save differs:\n%s\nvs\n%s", again, text)
	}
}

func TestParseRules(t *testing.T) {
	in := "# saved by uvsadm\n" +
		"\n" +
		"ipvsadm -C\r\n" +
		"   # indented comment\n" +
		"-A -t 10.0.0.100:80 -s wrr\n" +
		"\t-a -t 10.0.0.100:80 -r 10.0.0.7:80 -m -w 4  \n" +
		"ipvsadm -A -f 10 -s rr -p\n" +
		"--set 0 0 60\n" +
		"-Z\n"
	cmds, err := ParseRules(strings.NewReader(in), "rules.txt")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	var lines []int
	for _, c := range cmds {
		kinds = append(kinds, c.Kind.String())
		lines = append(lines, c.Line)
	}
	if strings.Join(kinds, " ") != "flush add-service add-server add-service set zero" {
		t.Fatalf("kinds %v", kinds)
	}
	if !reflect.DeepEqual(lines, []int{3, 5, 6, 7, 8, 9}) {
		t.Fatalf("lines %v", lines)
	}
	if cmds[2].Dest.Weight != 4 || cmds[2].Dest.Fwd != spec.FwdMasq || cmds[3].Service.Timeout != 360 {
		t.Fatalf("bad commands %+v", cmds)
	}
}

func TestParseRulesErrors(t *testing.T) {
	for _, c := range []struct {
		in   string
		msg  string
		code int
	}{
		{"-A -t 10.0.0.1:80\n\n-a -t 10.0.0.1:80 -r 10.0.0.2 -w 70000\n",
			`rules.txt:3: illegal weight specified: "-w 70000"`, 2},
		{"-L -n\n", `rules.txt:1: the list command cannot be used in a rules file (only -A -E -D -a -e -d -C -Z --set -P -Q): "-L"`, 2},
		{"-C\n-R\n", `rules.txt:2: the restore command cannot be used in a rules file (only -A -E -D -a -e -d -C -Z --set -P -Q): "-R"`, 2},
		{"-S\n", `rules.txt:1: the save command cannot be used in a rules file (only -A -E -D -a -e -d -C -Z --set -P -Q): "-S"`, 2},
		{"-h\n", `rules.txt:1: the help command cannot be used in a rules file (only -A -E -D -a -e -d -C -Z --set -P -Q): "-h"`, 2},
		{"-t 10.0.0.1:80 -A\n", `rules.txt:1: a rule must start with a command option (-A -E -D -a -e -d -C -Z --set -P -Q): "-t"`, 255},
		{"-A -t 10.0.0.1:80 --frobnicate\n", `rules.txt:1: --frobnicate: unknown option: "--frobnicate"`, 255},
		{"-A -t 10.0.0.1:80 -s rr -s wrr\n", `rules.txt:1: multiple 'scheduler' options specified: "-s wrr"`, 2},
		{"-A -t 10.0.0.1:80 -x 5\n", `rules.txt:1: Illegal 'u-threshold' option with the 'add-service' command: "-x 5"`, 2},
		{"-a -t 10.0.0.1:80\n", `rules.txt:1: You need to supply the 'real-server' option for the 'add-server' command`, 2},
		{"-A -t 10.0.0.1:80 stray\n", `rules.txt:1: unexpected argument stray: "stray"`, 2},
	} {
		_, err := ParseRules(strings.NewReader(c.in), "rules.txt")
		if err == nil || err.Error() != c.msg {
			t.Errorf("%q:\n got %v\nwant %s", c.in, err, c.msg)
			continue
		}
		var le *LineError
		var e *Error
		if !errors.As(err, &le) || !errors.As(err, &e) || e.Code != c.code {
			t.Errorf("%q: error chain %#v", c.in, err)
		}
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseRulesReadError(t *testing.T) {
	_, err := ParseRules(failReader{}, "r")
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("got %v", err)
	}
	_, err = ParseRules(strings.NewReader(strings.Repeat("x", maxRuleLine+1)), "r")
	if err == nil {
		t.Fatal("over-long line accepted")
	}
}
