package ipvsadm

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/spec"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func tcpSvc(addrport, sched string) spec.Service {
	a := ap(addrport)
	return spec.Service{Key: spec.ServiceKey{Proto: spec.ProtoTCP, Addr: a.Addr(), Port: a.Port()},
		Scheduler: sched, Netmask: spec.DefaultNetmask(a.Addr().Is6())}
}

func dest(addrport string, fwd spec.Fwd, weight uint32) spec.Dest {
	a := ap(addrport)
	return spec.Dest{Addr: a.Addr(), Port: a.Port(), Fwd: fwd, Weight: weight}
}

// referenceTable is the table of ipvsadm -L's default layout (ipvsadm.c print_title, print_service_entry), given in a
// scrambled (kernel-like) order so that sorting is exercised.
func referenceTable() []ServiceView {
	udp := spec.Service{Key: spec.ServiceKey{Proto: spec.ProtoUDP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 53},
		Scheduler: "rr", Persistent: true, Timeout: 360, Netmask: 0xffffff00, OPS: true}
	fwm1 := spec.Service{Key: spec.ServiceKey{FWMark: 1, IPv6: true, Proto: spec.ProtoTCP},
		Scheduler: "wlc", Persistent: true, Timeout: 360, Netmask: 64}
	fwm7 := spec.Service{Key: spec.ServiceKey{FWMark: 7, Proto: spec.ProtoTCP},
		Scheduler: "sh", Flags: spec.SchedFlag1 | spec.SchedFlag2, Netmask: 0xffffffff}
	return []ServiceView{
		{Service: fwm7, Dests: []DestView{{Dest: dest("192.168.1.9:0", spec.FwdTunnel, 0)}}},
		{Service: tcpSvc("[2001:db8::80]:80", "rr"), Dests: []DestView{{Dest: dest("[2001:db8::a0a0]:80", spec.FwdMasq, 1)}}},
		{Service: udp, Dests: []DestView{{Dest: dest("192.168.1.2:53", spec.FwdRoute, 1), InactConns: 4}}},
		{Service: fwm1},
		{Service: tcpSvc("10.0.0.1:80", "wlc"), Dests: []DestView{
			{Dest: dest("192.168.1.3:8080", spec.FwdMasq, 2)},
			{Dest: dest("192.168.1.2:80", spec.FwdMasq, 1), ActiveConns: 3, InactConns: 10},
		}},
	}
}

func render(t *testing.T, f func(*strings.Builder) error) string {
	t.Helper()
	var b strings.Builder
	if err := f(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func checkGolden(t *testing.T, name, got, want string) {
	t.Helper()
	if got != want {
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Errorf("%s: line %d:\n got %q\nwant %q", name, i+1, g, w)
			}
		}
	}
}

func TestFormatListDefault(t *testing.T) {
	want := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:80 wlc
  -> 192.168.1.2:80               Masq    1      3          10        
  -> 192.168.1.3:8080             Masq    2      0          0         
UDP  10.0.0.1:53 rr persistent 360 mask 255.255.255.0 ops
  -> 192.168.1.2:53               Route   1      0          4         
TCP  [2001:db8::80]:80 rr
  -> [2001:db8::a0a0]:80          Masq    1      0          0         
FWM  1 IPv6 wlc persistent 360 mask 64
FWM  7 sh (sh-fallback,sh-port)
  -> 192.168.1.9:0                Tunnel  0      0          0         
`
	got := render(t, func(b *strings.Builder) error {
		return FormatList(b, referenceTable(), ListOptions{Numeric: true}, DefaultConnTab)
	})
	checkGolden(t, "-Ln", got, want)
}

func TestFormatListNoSort(t *testing.T) {
	want := `IP Virtual Server version 1.2.1 (size=65536)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
FWM  7 sh (sh-fallback,sh-port)
  -> 192.168.1.9:0                Tunnel  0      0          0         
TCP  [2001:db8::80]:80 rr
  -> [2001:db8::a0a0]:80          Masq    1      0          0         
UDP  10.0.0.1:53 rr persistent 360 mask 255.255.255.0 ops
  -> 192.168.1.2:53               Route   1      0          4         
FWM  1 IPv6 wlc persistent 360 mask 64
TCP  10.0.0.1:80 wlc
  -> 192.168.1.3:8080             Masq    2      0          0         
  -> 192.168.1.2:80               Masq    1      3          10        
`
	got := render(t, func(b *strings.Builder) error {
		return FormatList(b, referenceTable(), ListOptions{Numeric: true, NoSort: true}, 65536)
	})
	checkGolden(t, "-Ln --nosort", got, want)
}

func statsTable() []ServiceView {
	st := StatsView{Conns: 1234, InPkts: 56789, OutPkts: 43210, InBytes: 123456789, OutBytes: 987654321012}
	rt := RateView{CPS: 12, InPPS: 340, OutPPS: 310, InBPS: 45000, OutBPS: 380000}
	return []ServiceView{{
		Service: tcpSvc("10.0.0.1:80", "wlc"), Stats: st, Rate: rt,
		Dests: []DestView{{Dest: dest("192.168.1.2:80", spec.FwdMasq, 1), Stats: st, Rate: rt,
			ActiveConns: 3, InactConns: 10, PersistConns: 5}},
	}}
}

func TestFormatListStats(t *testing.T) {
	want := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.0.0.1:80                      1234    56789    43210  123456K     987G
  -> 192.168.1.2:80                   1234    56789    43210  123456K     987G
`
	got := render(t, func(b *strings.Builder) error {
		// --stats wins over every other format option.
		return FormatList(b, statsTable(), ListOptions{Stats: true, Rate: true, Thresholds: true, TunInfo: true}, 4096)
	})
	checkGolden(t, "--stats", got, want)

	wantExact := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.0.0.1:80                      1234    56789    43210 123456789 987654321012
  -> 192.168.1.2:80                   1234    56789    43210 123456789 987654321012
`
	got = render(t, func(b *strings.Builder) error {
		return FormatList(b, statsTable(), ListOptions{Stats: true, Exact: true}, 4096)
	})
	checkGolden(t, "--stats --exact", got, wantExact)
}

func TestFormatListRate(t *testing.T) {
	want := `Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  10.0.0.1:80                        12      340      310    45000   380000
  -> 192.168.1.2:80                     12      340      310    45000   380000
`
	got := render(t, func(b *strings.Builder) error {
		return FormatService(b, statsTable()[0], ListOptions{Rate: true, PersistentConn: true})
	})
	checkGolden(t, "--rate", got, want)

	// Dest CPS/PPS are never abbreviated, the service's are.
	big := statsTable()
	big[0].Rate = RateView{CPS: 123456789, InPPS: 1, OutPPS: 2, InBPS: 200000000000000, OutBPS: 5}
	big[0].Dests[0].Rate = big[0].Rate
	want = `Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  10.0.0.1:80                   123456K        1        2     200T        5
  -> 192.168.1.2:80               123456789        1        2     200T        5
`
	got = render(t, func(b *strings.Builder) error { return FormatService(b, big[0], ListOptions{Rate: true}) })
	checkGolden(t, "--rate big", got, want)
}

func TestFormatListThresholdsPersistent(t *testing.T) {
	tab := statsTable()
	tab[0].Dests[0].Dest.UThreshold = 100
	tab[0].Dests[0].Dest.LThreshold = 50
	want := `Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  10.0.0.1:80 wlc
  -> 192.168.1.2:80               100        50         3          10        
`
	got := render(t, func(b *strings.Builder) error {
		return FormatService(b, tab[0], ListOptions{Thresholds: true, PersistentConn: true, TunInfo: true})
	})
	checkGolden(t, "--thresholds", got, want)

	tab[0].Service.Persistent = true
	tab[0].Service.Timeout = 360
	want = `Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  10.0.0.1:80 wlc persistent 360
  -> 192.168.1.2:80               1         5           3          10        
`
	got = render(t, func(b *strings.Builder) error {
		return FormatService(b, tab[0], ListOptions{PersistentConn: true, TunInfo: true})
	})
	checkGolden(t, "--persistent-conn", got, want)
}

func TestFormatListTunInfo(t *testing.T) {
	gue := dest("192.168.10.1:80", spec.FwdTunnel, 1)
	gue.TunType, gue.TunPort, gue.TunCsum = spec.TunGUE, 6080, spec.TunNoCsum
	gre := dest("192.168.10.2:80", spec.FwdTunnel, 1)
	gre.TunType, gre.TunCsum = spec.TunGRE, spec.TunCsumOn
	sv := ServiceView{Service: tcpSvc("10.0.0.1:80", "rr"), Dests: []DestView{
		{Dest: dest("192.168.10.4:80", spec.FwdMasq, 1)},
		{Dest: dest("192.168.10.3:80", spec.FwdTunnel, 1)},
		{Dest: gre},
		{Dest: gue},
	}}
	want := `Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
TCP  10.0.0.1:80 rr
  -> 192.168.10.1:80              Tunnel  gue:6080:-c   1      0          0         
  -> 192.168.10.2:80              Tunnel  gre:+c        1      0          0         
  -> 192.168.10.3:80              Tunnel  ipip          1      0          0         
  -> 192.168.10.4:80              Masq    n/a           1      0          0         
`
	got := render(t, func(b *strings.Builder) error { return FormatService(b, sv, ListOptions{TunInfo: true}) })
	checkGolden(t, "--tun-info", got, want)
}

func TestFormatListSuffixesAndFullNAT(t *testing.T) {
	s1 := tcpSvc("10.0.0.2:443", "wrr")
	s1.Flags = spec.SchedFlag1 | spec.SchedFlag3
	s1.Persistent, s1.Timeout, s1.PE = true, 60, "sip"
	s2 := tcpSvc("10.0.0.2:80", "mh")
	s2.Flags = spec.SchedFlag2
	s2.PE = "sip" // pe is only shown for persistent services
	s3 := tcpSvc("[2001:db8::1]:80", "rr")
	s3.Persistent, s3.Timeout, s3.Netmask = true, 100, 128
	want := `TCP  10.0.0.2:80 mh (mh-port)
  -> 192.168.0.1:80               FullNat 3      0          0         
TCP  10.0.0.2:443 wrr (flag-1,flag-3) persistent 60 pe sip
TCP  [2001:db8::1]:80 rr persistent 100
  -> 10.1.1.1:80                  Tunnel  1      0          0         
`
	tab := []ServiceView{{Service: s3, Dests: []DestView{{Dest: dest("10.1.1.1:80", spec.FwdTunnel, 1)}}},
		{Service: s1}, {Service: s2, Dests: []DestView{{Dest: dest("192.168.0.1:80", spec.FwdFullNAT, 3)}}}}
	got := render(t, func(b *strings.Builder) error { return FormatList(b, tab, ListOptions{}, 4096) })
	got = got[strings.Index(got, "InActConn\n")+len("InActConn\n"):]
	checkGolden(t, "suffixes", got, want)
}

func TestSortWrappedComparison(t *testing.T) {
	// 10.0.0.1 - 192.168.0.1 wraps to a positive int in C: 10.0.0.1 sorts
	// after 192.168.0.1 (ipvsadm.c list_all: the kernel's order).
	tab := []ServiceView{{Service: tcpSvc("10.0.0.1:80", "rr")}, {Service: tcpSvc("192.168.0.1:80", "rr")}}
	got := SortServices(tab)
	if got[0].Service.Key.Addr != netip.MustParseAddr("192.168.0.1") {
		t.Fatalf("wrapped sort: got %v first", got[0].Service.Key.Addr)
	}
	// Close addresses sort naturally, then by port.
	tab = []ServiceView{{Service: tcpSvc("10.0.0.2:80", "rr")}, {Service: tcpSvc("10.0.0.1:81", "rr")}, {Service: tcpSvc("10.0.0.1:80", "rr")}}
	got = SortServices(tab)
	var order []string
	for _, s := range got {
		order = append(order, netip.AddrPortFrom(s.Service.Key.Addr, s.Service.Key.Port).String())
	}
	if strings.Join(order, " ") != "10.0.0.1:80 10.0.0.1:81 10.0.0.2:80" {
		t.Fatalf("sort order %v", order)
	}
	if tab[0].Service.Key.Port != 80 || tab[0].Service.Key.Addr != netip.MustParseAddr("10.0.0.2") {
		t.Fatal("SortServices modified its argument")
	}
	ds := SortDests([]DestView{{Dest: dest("10.0.0.1:80", spec.FwdRoute, 1)}, {Dest: dest("200.0.0.1:80", spec.FwdRoute, 1)}})
	if ds[0].Dest.Addr != netip.MustParseAddr("200.0.0.1") {
		t.Fatalf("wrapped dest sort: got %v first", ds[0].Dest.Addr)
	}
}

func TestTruncation(t *testing.T) {
	// Numeric IPv4 names never reach the limits; check the helpers on
	// names that would (as with resolved host names in ipvsadm).
	s := tcpSvc("10.0.0.1:80", "rr")
	if n := listName(&s); n != "TCP  10.0.0.1:80" {
		t.Fatalf("listName %q", n)
	}
	v6 := tcpSvc("[2001:db8:1111:2222:3333:4444:5555:6666]:65535", "rr")
	if n := listName(&v6); n != "TCP  [2001:db8:1111:2222:3333:4444:5555:6666]:65535" {
		t.Fatalf("IPv6 names are never cut: %q", n)
	}
	d := dest("[2001:db8:1111:2222:3333:4444:5555:6666]:65535", spec.FwdTunnel, 1)
	if n := destName(&d); len(n) <= maxDstNameWidth {
		t.Fatalf("IPv6 dest name cut: %q", n)
	}
}

func TestNtop(t *testing.T) {
	for in, want := range map[string]string{
		"::1":              "::1",
		"::":               "::",
		"::1.2.3.4":        "::1.2.3.4",
		"::ffff:1.2.3.4":   "::ffff:1.2.3.4",
		"2001:db8::1":      "2001:db8::1",
		"2001:db8:0:1::1":  "2001:db8:0:1::1",
		"::102":            "::102",
		"1:0:0:1:0:0:0:1":  "1:0:0:1::1",
		"10.1.2.3":         "10.1.2.3",
		"fe80::abcd:0:0:1": "fe80::abcd:0:0:1",
	} {
		if got := ntop(netip.MustParseAddr(in)); got != want {
			t.Errorf("ntop(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestFormatConns(t *testing.T) {
	conns := []ConnView{
		{Proto: spec.ProtoTCP, Expire: 898, State: "ESTABLISHED", Client: ap("10.1.2.3:54321"), Virtual: ap("10.0.0.1:80"), Dest: ap("192.168.1.2:80")},
		{Proto: spec.ProtoUDP, Expire: 297, State: "UDP", Client: ap("10.1.2.3:40000"), Virtual: ap("10.0.0.1:53"), Dest: ap("192.168.1.2:53")},
		{Proto: spec.ProtoTCP, Expire: 5, State: "NONE", Client: ap("10.1.2.0:0"), Virtual: ap("10.0.0.1:80"), Dest: ap("192.168.1.2:80")},
		{Proto: spec.ProtoIP, Expire: 359, State: "ASSURED", Client: ap("10.1.2.3:0"), Virtual: ap("0.0.0.7:0"), Dest: ap("192.168.1.9:0")},
	}
	want := `IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:58  ESTABLISHED 10.1.2.3:54321     10.0.0.1:80        192.168.1.2:80
UDP 04:57  UDP         10.1.2.3:40000     10.0.0.1:53        192.168.1.2:53
TCP 00:05  NONE        10.1.2.0:0         10.0.0.1:80        192.168.1.2:80
IP  05:59  ASSURED     10.1.2.3:0         0.0.0.7:0          192.168.1.9:0
`
	got := render(t, func(b *strings.Builder) error { return FormatConns(b, conns, false) })
	checkGolden(t, "-Lnc", got, want)

	pc := []ConnView{
		{Proto: spec.ProtoUDP, Expire: 170, State: "UDP", Client: ap("10.1.2.3:5060"), Virtual: ap("10.0.0.1:5060"), Dest: ap("192.168.1.2:5060"), PEName: "sip", PEData: "abcd@host"},
		{Proto: spec.ProtoTCP, Expire: 6000, State: "ESTABLISHED", Client: ap("[2001:db8::2]:1234"), Virtual: ap("[2001:db8::1]:80"), Dest: ap("[2001:db8::a]:80")},
	}
	want = `IPVS connection entries
pro expire state       source             virtual            destination        pe name          pe_data
UDP 02:50  UDP         10.1.2.3:5060      10.0.0.1:5060      192.168.1.2:5060 sip                abcd@host
TCP 100:00 ESTABLISHED [2001:db8::2]:1234 [2001:db8::1]:80   [2001:db8::a]:80
`
	got = render(t, func(b *strings.Builder) error { return FormatConns(b, pc, true) })
	checkGolden(t, "-Lnc --persistent-conn", got, want)
}

func TestFormatTimeoutDaemon(t *testing.T) {
	got := render(t, func(b *strings.Builder) error { return FormatTimeout(b, 900, 120, 300) })
	checkGolden(t, "--timeout", got, "Timeout (tcp tcpfin udp): 900 120 300\n")
	got = render(t, func(b *strings.Builder) error {
		return FormatDaemon(b, []DaemonConfig{
			{State: "master", McastIfn: "eth0", SyncMaxLen: 1472, McastGroup: netip.MustParseAddr("224.0.0.81"), McastPort: 8848, McastTTL: 1},
			{},
			{State: "backup", McastIfn: "eth1", SyncID: 3},
		})
	})
	checkGolden(t, "--daemon", got, "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"+
		"backup sync daemon (mcast=eth1, syncid=3)\n")
}

func TestLargenum(t *testing.T) {
	for _, c := range []struct {
		v     uint64
		exact bool
		want  string
	}{
		{0, false, "        0"},
		{99999999, false, " 99999999"},
		{100000000, false, "  100000K"},
		{999999999, false, "  999999K"},
		{1000000000, false, "    1000M"},
		{99999999999, false, "   99999M"},
		{100000000000, false, "     100G"},
		{99999999999999, false, "   99999G"},
		{100000000000000, false, "     100T"},
		{18446744073709551615, false, "18446744T"},
		{12345678, true, " 12345678"},
		{123456789, true, " 123456789"},
		{18446744073709551615, true, " 18446744073709551615"},
	} {
		var b strings.Builder
		largenum(&b, c.v, c.exact)
		if b.String() != c.want {
			t.Errorf("largenum(%d, %v) = %q, want %q", c.v, c.exact, b.String(), c.want)
		}
	}
}
