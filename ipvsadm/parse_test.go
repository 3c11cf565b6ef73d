package ipvsadm

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/spec"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestParseSuccess(t *testing.T) {
	v4 := mustAddr("10.0.0.100")
	svc := func(p spec.Proto, a netip.Addr, port uint16) spec.Service {
		return spec.Service{Key: spec.ServiceKey{Proto: p, Addr: a, Port: port}, Netmask: spec.DefaultNetmask(a.Is6())}
	}
	withSched := func(s spec.Service, sched string) spec.Service { s.Scheduler = sched; return s }
	for _, c := range []struct {
		args string
		want Command
	}{
		{"", Command{Kind: CmdList}},
		{"-A -t 10.0.0.100:80 -s wrr", Command{Kind: CmdAddService, HasService: true,
			Service: withSched(svc(spec.ProtoTCP, v4, 80), "wrr")}},
		{"-At 10.0.0.100:http", Command{Kind: CmdAddService, HasService: true,
			Service: withSched(svc(spec.ProtoTCP, v4, 80), "wlc")}},
		{"--add-service --tcp-service=10.0.0.100:443", Command{Kind: CmdAddService, HasService: true,
			Service: withSched(svc(spec.ProtoTCP, v4, 443), "wlc")}},
		{"-E -u 10.0.0.100:53 -s rr -p 100 -M 255.255.255.0 -o", Command{Kind: CmdEditService, HasService: true,
			Service: spec.Service{Key: spec.ServiceKey{Proto: spec.ProtoUDP, Addr: v4, Port: 53}, Scheduler: "rr",
				Persistent: true, Timeout: 100, Netmask: 0xffffff00, OPS: true}}},
		{"-A -t 10.0.0.100:0 -p", Command{Kind: CmdAddService, HasService: true,
			Service: spec.Service{Key: spec.ServiceKey{Proto: spec.ProtoTCP, Addr: v4}, Scheduler: "wlc",
				Persistent: true, Timeout: 360, Netmask: 0xffffffff}}},
		{"-A -f 10 -s rr -p", Command{Kind: CmdAddService, HasService: true,
			Service: spec.Service{Key: spec.ServiceKey{FWMark: 10, Proto: spec.ProtoTCP}, Scheduler: "rr",
				Persistent: true, Timeout: 360, Netmask: 0xffffffff}}},
		{"-A -f 1 -6 -p 60 -M 64 --pe sip -o", Command{Kind: CmdAddService, HasService: true,
			Service: spec.Service{Key: spec.ServiceKey{FWMark: 1, IPv6: true, Proto: spec.ProtoTCP}, Scheduler: "wlc",
				Persistent: true, Timeout: 60, Netmask: 64, PE: "sip", OPS: true}}},
		// -M before an IPv6 -t is read as IPv4 and then reset to 128.
		{"-A -M 64 -t [2001:db8::1]:80", Command{Kind: CmdAddService, HasService: true,
			Service: withSched(svc(spec.ProtoTCP, mustAddr("2001:db8::1"), 80), "wlc")}},
		{"-A -t 10.0.0.100:80 -s sh -b sh-fallback,sh-port", Command{Kind: CmdAddService, HasService: true,
			Service: func() spec.Service {
				s := withSched(svc(spec.ProtoTCP, v4, 80), "sh")
				s.Flags = spec.SchedFlag1 | spec.SchedFlag2
				return s
			}()}},
		{"-A -t 10.0.0.100:80 -b flag-3", Command{Kind: CmdAddService, HasService: true,
			Service: func() spec.Service {
				s := withSched(svc(spec.ProtoTCP, v4, 80), "wlc")
				s.Flags = spec.SchedFlag3
				return s
			}()}},
		{"-a -t 10.0.0.100:80 -r 10.0.0.7:8080 -m -w 4", Command{Kind: CmdAddServer, HasService: true,
			Service: svc(spec.ProtoTCP, v4, 80),
			Dest:    spec.Dest{Addr: mustAddr("10.0.0.7"), Port: 8080, Fwd: spec.FwdMasq, Weight: 4}}},
		// -g (default) forces the service port; no port defaults to it.
		{"-a -t 10.0.0.100:80 -r 10.0.0.7:8080", Command{Kind: CmdAddServer, HasService: true,
			Service: svc(spec.ProtoTCP, v4, 80),
			Dest:    spec.Dest{Addr: mustAddr("10.0.0.7"), Port: 80, Fwd: spec.FwdRoute, Weight: 1}}},
		{"-e -t 10.0.0.100:80 -r 10.0.0.7 -m -x 10 -y 5 -w 0", Command{Kind: CmdEditServer, HasService: true,
			Service: svc(spec.ProtoTCP, v4, 80),
			Dest:    spec.Dest{Addr: mustAddr("10.0.0.7"), Port: 80, Fwd: spec.FwdMasq, UThreshold: 10, LThreshold: 5}}},
		// -r before -t: no port to copy, and -m keeps port 0.
		{"-a -r 10.0.0.7 -t 10.0.0.100:80 -m", Command{Kind: CmdAddServer, HasService: true,
			Service: svc(spec.ProtoTCP, v4, 80),
			Dest:    spec.Dest{Addr: mustAddr("10.0.0.7"), Fwd: spec.FwdMasq, Weight: 1}}},
		{"-a -f 7 -r 192.168.1.9:99 -i --tun-type gue --tun-port 6080 --tun-remcsum", Command{Kind: CmdAddServer, HasService: true,
			Service: spec.Service{Key: spec.ServiceKey{FWMark: 7, Proto: spec.ProtoTCP}, Netmask: 0xffffffff},
			Dest: spec.Dest{Addr: mustAddr("192.168.1.9"), Port: 99, Fwd: spec.FwdTunnel, Weight: 1,
				TunType: spec.TunGUE, TunPort: 6080, TunCsum: spec.TunRemCsum}}},
		{"-a -t [2001:db8::1]:80 -r 10.0.0.7 -i", Command{Kind: CmdAddServer, HasService: true,
			Service: svc(spec.ProtoTCP, mustAddr("2001:db8::1"), 80),
			Dest:    spec.Dest{Addr: mustAddr("10.0.0.7"), Port: 80, Fwd: spec.FwdTunnel, Weight: 1}}},
		// FULLNAT: -b is the forwarding method on -a/-e.
		{"-a -t 10.0.0.100:80 -r 10.0.0.7:8080 -b -w 3", Command{Kind: CmdAddServer, HasService: true,
			Service: svc(spec.ProtoTCP, v4, 80),
			Dest:    spec.Dest{Addr: mustAddr("10.0.0.7"), Port: 8080, Fwd: spec.FwdFullNAT, Weight: 3}}},
		{"-e -t 10.0.0.100:80 -r 10.0.0.7 --fullnat", Command{Kind: CmdEditServer, HasService: true,
			Service: svc(spec.ProtoTCP, v4, 80),
			Dest:    spec.Dest{Addr: mustAddr("10.0.0.7"), Port: 80, Fwd: spec.FwdFullNAT, Weight: 1}}},
		{"-d -t 10.0.0.100:80 -r 10.0.0.7", Command{Kind: CmdDelServer, HasService: true,
			Service: svc(spec.ProtoTCP, v4, 80),
			Dest:    spec.Dest{Addr: mustAddr("10.0.0.7"), Port: 80, Fwd: spec.FwdRoute, Weight: 1}}},
		{"--add-laddr -z 192.168.0.1 -t 10.0.0.100:80", Command{Kind: CmdAddLaddr, HasService: true,
			Service: svc(spec.ProtoTCP, v4, 80), Laddr: spec.Dest{Addr: mustAddr("192.168.0.1")}}},
		{"-Q -t 10.0.0.100:80 -z 2001:db8::5", Command{Kind: CmdDelLaddr, HasService: true,
			Service: svc(spec.ProtoTCP, v4, 80), Laddr: spec.Dest{Addr: mustAddr("2001:db8::5")}}},
		{"-G -t 10.0.0.100:80", Command{Kind: CmdGetLaddr, HasService: true, Service: svc(spec.ProtoTCP, v4, 80)}},
		{"--list-checkers", Command{Kind: CmdListCheckers}},
		{"--list-checkers -n", Command{Kind: CmdListCheckers, List: ListOptions{Numeric: true}}},
		{"--counters", Command{Kind: CmdCounters}},
		{"--counters --json", Command{Kind: CmdCounters, List: ListOptions{JSON: true}}},
		{"-D --sctp-service 10.0.0.100:9", Command{Kind: CmdDelService, HasService: true, Service: svc(spec.ProtoSCTP, v4, 9)}},
		{"-C", Command{Kind: CmdFlush}},
		{"-Z", Command{Kind: CmdZero}},
		{"-Z -t 10.0.0.100:80", Command{Kind: CmdZero, HasService: true, Service: svc(spec.ProtoTCP, v4, 80)}},
		{"-Ln", Command{Kind: CmdList, List: ListOptions{Numeric: true}}},
		{"-lnc", Command{Kind: CmdList, List: ListOptions{Numeric: true, Connections: true}}},
		{"-L -n --stats --rate --exact --nosort --sort --tun-info --thresholds --persistent-conn",
			Command{Kind: CmdList, List: ListOptions{Numeric: true, Stats: true, Rate: true, Exact: true, NoSort: true,
				TunInfo: true, Thresholds: true, PersistentConn: true}}},
		{"-L -t 10.0.0.100:80", Command{Kind: CmdList, HasService: true, Service: svc(spec.ProtoTCP, v4, 80)}},
		{"-L --timeout", Command{Kind: CmdList, List: ListOptions{Timeout: true}}},
		{"-l --daemon", Command{Kind: CmdList, List: ListOptions{Daemon: true}}},
		{"-S -n", Command{Kind: CmdSave, List: ListOptions{Numeric: true}}},
		{"-R", Command{Kind: CmdRestore}},
		{"--set 900 0 300", Command{Kind: CmdSetTimeout, TimeoutTCP: 900, TimeoutUDP: 300}},
		{"--set -- 1 2 3", Command{Kind: CmdSetTimeout, TimeoutTCP: 1, TimeoutTCPFin: 2, TimeoutUDP: 3}},
		{"--start-daemon master", Command{Kind: CmdStartDaemon, Daemon: DaemonConfig{State: "master", McastIfn: "eth0"}}},
		{"--start-daemon backup --mcast-interface eth1 --syncid 3 --mcast-group ff02::81 --mcast-port 9000 --mcast-ttl 2 --sync-maxlen 1400",
			Command{Kind: CmdStartDaemon, Daemon: DaemonConfig{State: "backup", McastIfn: "eth1", SyncID: 3,
				McastGroup: mustAddr("ff02::81"), McastPort: 9000, McastTTL: 2, SyncMaxLen: 1400}}},
		{"--stop-daemon backup", Command{Kind: CmdStopDaemon, Daemon: DaemonConfig{State: "backup"}}},
		{"-h whatever -x", Command{Kind: CmdHelp}},
		{"--version", Command{Kind: CmdVersion}},
	} {
		got, err := Parse(strings.Fields(c.args))
		if err != nil {
			t.Errorf("Parse(%q): %v", c.args, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", c.args, got, c.want)
		}
	}
}

func TestParseAddresses(t *testing.T) {
	for in, want := range map[string]string{
		"10.1:80":           "10.0.0.1:80",
		"0x0a000001:80":     "10.0.0.1:80",
		"012.0.0.1:80":      "10.0.0.1:80",
		"167772161:80":      "10.0.0.1:80",
		"[1.2.3.4]:80":      "1.2.3.4:0", // ipvsadm drops the port here
		"[2001:db8::1]:443": "[2001:db8::1]:443",
		"2001:db8::1":       "[2001:db8::1]:0",
		"10.0.0.1:https":    "10.0.0.1:443",
		"10.0.0.1:+80":      "10.0.0.1:80",
	} {
		c, err := Parse([]string{"-L", "-t", in})
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		got := netip.AddrPortFrom(c.Service.Key.Addr, c.Service.Key.Port).String()
		if got != want {
			t.Errorf("%s: got %s want %s", in, got, want)
		}
	}
	for _, in := range []string{"80", "", "10.0.0.1:", "10.0.0.1:65536", "10.0.0.1:nosuch", "host.example:80",
		"[2001:db8::1]", "[2001:db8::1]x80", "1.2.3.256:80", "08.0.0.1:80", "fe80::1%eth0", "1.2.3.4.5:80", "10.0.0.1:0x50"} {
		_, err := Parse([]string{"-L", "-t", in})
		if err == nil || err.Error() != "illegal virtual server address[:port] specified" {
			t.Errorf("%q: want address error, got %v", in, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tryHelp := "Try `uvsadm -h' or 'uvsadm --help' for more information."
	for _, c := range []struct {
		args  []string
		code  int
		msg   string
		token string
	}{
		{[]string{"-t", "10.0.0.1:80"}, 255, tryHelp, ""},
		{[]string{"foo"}, 255, tryHelp, ""},
		{[]string{"--bogus"}, 255, tryHelp, ""},
		{[]string{"-L", "--bogus"}, 255, "--bogus: unknown option", "--bogus"},
		{[]string{"-Lq"}, 255, "-Lq: unknown option", "-Lq"},
		{[]string{"-A", "-t"}, 255, "-t: missing argument", "-t"},
		{[]string{"-L", "--stats=1"}, 255, "--stats=1: option does not take an argument", "--stats=1"},
		{[]string{"-A", "-t", "10.0.0.1:80", "-D"}, 2, "invalid option `-D'", "-D"},
		{[]string{"-L", "-h"}, 2, "invalid option `-h'", "-h"},
		{[]string{"-A", "-t", "10.0.0.1:80", "-s", "rr", "-s", "wrr"}, 2, "multiple 'scheduler' options specified", "-s wrr"},
		{[]string{"-A", "-t", "10.0.0.1:80", "-u", "10.0.0.1:53"}, 2, "multiple 'service-address' options specified", "-u 10.0.0.1:53"},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-m", "-g"}, 2, "multiple 'forwarding-method' options specified", "-g"},
		{[]string{"-Lnn"}, 2, "multiple 'numeric' options specified", "-n"},
		{[]string{"-A", "-t", "x:80"}, 2, "illegal virtual server address[:port] specified", "-t x:80"},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2:99999"}, 2, "illegal real server address[:port] specified", "-r 10.0.0.2:99999"},
		{[]string{"-A", "-f", "0"}, 2, "invalid fwmark value `0' specified", "-f 0"},
		{[]string{"-A", "-f", "4294967296"}, 2, "invalid fwmark value `4294967296' specified", "-f 4294967296"},
		{[]string{"-A", "-f", "1x"}, 2, "invalid fwmark value `1x' specified", "-f 1x"},
		{[]string{"-A", "-t", "10.0.0.1:80", "-p", "0"}, 2, "invalid timeout value `0' specified", "-p 0"},
		{[]string{"-A", "-t", "10.0.0.1:80", "-p", "2678401"}, 2, "invalid timeout value `2678401' specified", "-p 2678401"},
		{[]string{"-A", "-t", "10.0.0.1:80", "-p", "foo"}, 2, "invalid timeout value `foo' specified", "-p foo"},
		{[]string{"-A", "-t", "10.0.0.1:80", "-p", "-M", "255.255.255.256"}, 2, "illegal virtual server persistent mask specified", "-M 255.255.255.256"},
		{[]string{"-A", "-t", "[::1]:80", "-p", "-M", "129"}, 2, "illegal ipv6 netmask specified", "-M 129"},
		{[]string{"-A", "-f", "1", "-6", "-M", "0"}, 2, "illegal ipv6 netmask specified", "-M 0"},
		{[]string{"-A", "-6", "-f", "1"}, 2, "-6 used before -f\n", "-6"},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-w", "65536"}, 2, "illegal weight specified", "-w 65536"},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-w", "-1"}, 2, "illegal weight specified", "-w -1"},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-x", "2147483648"}, 2, "illegal u_threshold specified", "-x 2147483648"},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-y", "z"}, 2, "illegal l_threshold specified", "-y z"},
		{[]string{"-A", "-t", "10.0.0.1:80", "-b", "nope"}, 2, "invalid scheduler flag `nope'", "-b nope"},
		{[]string{"-A", "-t", "10.0.0.1:80", "-s", "rr", "-b", "flag-1,sh-port"}, 2, "incompatible scheduler flag `sh-port'", "-b flag-1,sh-port"},
		{[]string{"-A", "-t", "10.0.0.1:80", "-b", "mh-port", "-s", "mh"}, 0, "", ""},
		{[]string{"-A", "-t", "10.0.0.1:80", "-b", "mh-port"}, 2, "incompatible scheduler flag `mh-port'", "-b mh-port"},
		{[]string{"-A", "-t", "10.0.0.1:0"}, 2, "Zero port specified for non-persistent service", "-t 10.0.0.1:0"},
		{[]string{"-A", "-t", "10.0.0.1"}, 2, "Zero port specified for non-persistent service", "-t 10.0.0.1"},
		{[]string{"-A", "-t", "10.0.0.1:80", "-o"}, 2, "One-Packet Scheduling is only for UDP virtual services", "-o"},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "2001:db8::2", "-m"}, 2, "Different address family is allowed only for tunneling servers", "-r 2001:db8::2"},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "--tun-type", "gue"}, 2, "Tunnel options conflict with forward method", "--tun-type gue"},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-i", "--tun-type", "gue"}, 2, "You need to supply the 'tun-port' option for the 'gue' tunnel type", ""},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-i", "--tun-port", "1"}, 2, "Illegal 'tun-port' option with the 'ipip' tunnel type", "--tun-port 1"},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-i", "--tun-type", "gre", "--tun-remcsum"}, 2, "Illegal 'tun-remcsum' option with the 'gre' tunnel type", "--tun-remcsum"},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-i", "--tun-type", "gue", "--tun-port", "5", "--tun-csum", "--tun-nocsum"}, 2,
			"The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type", "--tun-csum"},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-i", "--tun-type", "vxlan"}, 2, "illegal tunnel type specified", "--tun-type vxlan"},
		{[]string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-i", "--tun-port", "0"}, 2, "illegal tunnel port specified", "--tun-port 0"},
		{[]string{"-A", "-s", "rr"}, 2, "You need to supply the 'service-address' option for the 'add-service' command", ""},
		{[]string{"-a", "-t", "10.0.0.1:80"}, 2, "You need to supply the 'real-server' option for the 'add-server' command", ""},
		{[]string{"-A", "-t", "10.0.0.1:80", "-w", "1"}, 2, "Illegal 'weight' option with the 'add-service' command", "-w 1"},
		{[]string{"-A", "-t", "10.0.0.1:80", "-b", "flag-1", "--fullnat"}, 2, "Illegal 'forwarding-method' option with the 'add-service' command", "--fullnat"},
		{[]string{"-d", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-b"}, 2, "Illegal 'forwarding-method' option with the 'delete-server' command", "-b"},
		{[]string{"-C", "-n"}, 2, "Illegal 'numeric' option with the 'flush' command", "-n"},
		{[]string{"-L", "-c", "--timeout"}, 2, "The option 'timeout' conflicts with the 'connection' option in the 'list' command", "--timeout"},
		{[]string{"-L", "-c", "--stats"}, 2, "options conflicts in the list command", ""},
		{[]string{"-L", "--daemon", "--persistent-conn"}, 2, "options conflicts in the list command", ""},
		{[]string{"--set", "1", "2"}, 2, "--set option requires 3 timeout values", ""},
		{[]string{"--set", "1", "x", "3"}, 2, "invalid timeout value `x' specified", "x"},
		{[]string{"--set", "1", "2", "2678401"}, 2, "invalid timeout value `2678401' specified", "2678401"},
		{[]string{"--set", "1", "2", "3", "4"}, 2, "unexpected argument 4", "4"},
		{[]string{"-L", "extra"}, 2, "unexpected argument extra", "extra"},
		{[]string{"--start-daemon", "primary"}, 2, "illegal start-daemon parameter specified", "--start-daemon primary"},
		{[]string{"--stop-daemon", "primary"}, 2, "illegal start_daemon specified", "--stop-daemon primary"},
		{[]string{"--start-daemon", "master", "--syncid", "256"}, 2, "illegal syncid specified", "--syncid 256"},
		{[]string{"--start-daemon", "master", "--mcast-group", "10.0.0.1"}, 2, "invalid IPv4 mcast-group `10.0.0.1'", "--mcast-group 10.0.0.1"},
		{[]string{"--start-daemon", "master", "--mcast-group", "2001:db8::1"}, 2, "invalid IPv6 mcast-group `2001:db8::1'", "--mcast-group 2001:db8::1"},
		{[]string{"--start-daemon", "master", "--mcast-port", "0"}, 2, "illegal mcast-port specified", "--mcast-port 0"},
		{[]string{"--start-daemon", "master", "--mcast-ttl", "256"}, 2, "illegal mcast-ttl specified", "--mcast-ttl 256"},
		{[]string{"--start-daemon", "master", "--sync-maxlen", "65508"}, 2, "illegal sync-maxlen specified", "--sync-maxlen 65508"},
		{[]string{"--stop-daemon", "master", "--mcast-interface", "eth0"}, 2, "Illegal 'mcast-interface' option with the 'stop-daemon' command", "--mcast-interface eth0"},
		{[]string{"-P", "-t", "10.0.0.1:80"}, 2, "You need to supply the 'laddr' option for the 'add-laddr' command", ""},
		{[]string{"-P", "-z", "10.0.0.9"}, 2, "You need to supply the 'service-address' option for the 'add-laddr' command", ""},
		{[]string{"-Q", "-t", "10.0.0.1:80", "-z", "nothost"}, 2, "illegal local address specified", "-z nothost"},
		{[]string{"-A", "-z", "10.0.0.9", "-t", "10.0.0.1:80"}, 2, "Illegal 'laddr' option with the 'add-service' command", "-z 10.0.0.9"},
	} {
		_, err := Parse(c.args)
		if c.code == 0 {
			if err != nil {
				t.Errorf("%q: unexpected error %v", c.args, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%q: want *Error %q, got %v", c.args, c.msg, err)
			continue
		}
		if e.Code != c.code || e.Msg != c.msg || e.Token != c.token {
			t.Errorf("%q:\n got %d %q token %q\nwant %d %q token %q", c.args, e.Code, e.Msg, e.Token, c.code, c.msg, c.token)
		}
	}
}

// cTable is commands_v_options from ipvsadm 1.31, transcribed column by
// column (-n -c svc -s -p -M -r fwd -w -x -y -mc tot dmn -st -rt thr -pc
// srt sid -ex ops -pe -b grp port ttl size tinf type tprt nocs csum remc),
// plus the laddr and json columns uvs adds.
var cTable = map[CmdKind]string{
	CmdAddService:   "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx" + "x" + "x",
	CmdEditService:  "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx" + "x" + "x",
	CmdDelService:   "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x" + "x",
	CmdFlush:        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x" + "x",
	CmdList:         " 11xxxxxxxxx11       xxxxxxx xxxxx" + "x" + "x",
	CmdAddServer:    "xx+xxx+    xxxxxxxxxxxxxxxxxx     " + "x" + "x",
	CmdDelServer:    "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x" + "x",
	CmdEditServer:   "xx+xxx+    xxxxxxxxxxxxxxxxxx     " + "x" + "x",
	CmdSetTimeout:   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x" + "x",
	CmdStartDaemon:  "xxxxxxxxxxx xxxxxxx xxxx    xxxxxx" + "x" + "x",
	CmdStopDaemon:   "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx" + "x" + "x",
	CmdRestore:      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x" + "x",
	CmdSave:         " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x" + "x",
	CmdZero:         "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x" + "x",
	CmdAddLaddr:     "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "+" + "x",
	CmdDelLaddr:     "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "+" + "x",
	CmdGetLaddr:     " x+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + " " + "x",
	CmdListCheckers: " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x" + "x",
	CmdCounters:     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "x" + " ",
}

// optSample gives, per option, arguments that set it.
var optSample = [numOpts][]string{
	optNumeric: {"-n"}, optConnection: {"-c"}, optService: {"-t", "10.0.0.1:80"},
	optScheduler: {"-s", "rr"}, optPersistent: {"-p"}, optNetmask: {"-M", "255.255.255.0"},
	optServer: {"-r", "10.0.0.2"}, optForward: {"-m"}, optWeight: {"-w", "2"},
	optUThreshold: {"-x", "5"}, optLThreshold: {"-y", "1"}, optMcast: {"--mcast-interface", "eth1"},
	optTimeout: {"--timeout"}, optDaemon: {"--daemon"}, optStats: {"--stats"}, optRate: {"--rate"},
	optThresholds: {"--thresholds"}, optPersistentConn: {"--persistent-conn"}, optNoSort: {"--nosort"},
	optSyncID: {"--syncid", "1"}, optExact: {"--exact"}, optOnePacket: {"-o"}, optPE: {"--pe", "sip"},
	optSchedFlags: {"--sched-flags", "flag-1"}, optMcastGroup: {"--mcast-group", "224.0.0.82"},
	optMcastPort: {"--mcast-port", "9000"}, optMcastTTL: {"--mcast-ttl", "2"}, optSyncMaxLen: {"--sync-maxlen", "1000"},
	optTunInfo: {"--tun-info"}, optTunType: {"--tun-type", "ipip"}, optTunPort: {"--tun-port", "6080"},
	optTunNoCsum: {"--tun-nocsum"}, optTunCsum: {"--tun-csum"}, optTunRemCsum: {"--tun-remcsum"},
	optLaddr: {"-z", "10.0.0.9"}, optJSON: {"--json"},
}

func TestLegalityMatrix(t *testing.T) {
	cmdArg := map[CmdKind][]string{
		CmdAddService: {"-A"}, CmdEditService: {"-E"}, CmdDelService: {"-D"}, CmdFlush: {"-C"},
		CmdList: {"-L"}, CmdAddServer: {"-a"}, CmdDelServer: {"-d"}, CmdEditServer: {"-e"},
		CmdSetTimeout: {"--set", "1", "2", "3"}, CmdStartDaemon: {"--start-daemon", "master"},
		CmdStopDaemon: {"--stop-daemon", "master"}, CmdRestore: {"-R"}, CmdSave: {"-S"}, CmdZero: {"-Z"},
		CmdAddLaddr: {"-P"}, CmdDelLaddr: {"-Q"}, CmdGetLaddr: {"-G"},
		CmdListCheckers: {"--list-checkers"}, CmdCounters: {"--counters"},
	}
	for k, want := range cTable {
		r, ok := legality(k)
		if !ok || string(r[:]) != want {
			t.Errorf("%s: legality row %q, want %q", k, string(r[:]), want)
			continue
		}
		var base []string
		base = append(base, cmdArg[k]...)
		for j := optIdx(0); j < numOpts; j++ {
			if want[j] == '+' {
				// Leaving a required option out is reported.
				var args []string
				args = append(args, cmdArg[k]...)
				for i := optIdx(0); i < numOpts; i++ {
					if want[i] == '+' && i != j {
						args = append(args, optSample[i]...)
					}
				}
				_, err := Parse(args)
				msg := "You need to supply the '" + optNames[j] + "' option for the '" + k.String() + "' command"
				if err == nil || err.Error() != msg {
					t.Errorf("%q: got %v, want %q", args, err, msg)
				}
				base = append(base, optSample[j]...)
			}
		}
		for j := optIdx(0); j < numOpts; j++ {
			if want[j] == '+' {
				continue
			}
			args := append(append([]string(nil), base...), optSample[j]...)
			_, err := Parse(args)
			illegal := "Illegal '" + optNames[j] + "' option with the '" + k.String() + "' command"
			if want[j] == 'x' {
				if err == nil || err.Error() != illegal {
					t.Errorf("%q: got %v, want %q", args, err, illegal)
				}
			} else if err != nil && err.Error() == illegal {
				t.Errorf("%q: option should be legal", args)
			}
		}
	}
}

func TestParseAsProgName(t *testing.T) {
	_, err := ParseAs("ipvsadm", []string{"-n"})
	if err == nil || err.Error() != "Try `ipvsadm -h' or 'ipvsadm --help' for more information." {
		t.Fatalf("got %v", err)
	}
}

func TestUsageVersion(t *testing.T) {
	if Version() != "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n" {
		t.Fatalf("version %q", Version())
	}
	u := Usage()
	for _, want := range []string{"  uvsadm -A|E virtual-service", "--add-laddr       -P", "--fullnat      -b", "--laddr        -z"} {
		if !strings.Contains(u, want) {
			t.Errorf("usage lacks %q", want)
		}
	}
	if !strings.HasPrefix(UsageFor("ipvsadm"), Version()+"Usage:\n  ipvsadm -A|E") {
		t.Errorf("UsageFor prefix wrong")
	}
}
