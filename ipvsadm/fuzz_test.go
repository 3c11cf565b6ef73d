package ipvsadm

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/spec"
)

var fuzzSeeds = []string{
	"-A -t 10.0.0.100:80 -s wrr",
	"-a -t 10.0.0.100:80 -r 10.0.0.7:80 -m -w 4",
	"-A -f 10 -s rr -p",
	"-A -f 1 -6 -p 60 -M 64 --pe sip -o",
	"-A -u [2001:db8::1]:53 -p 100 -o -s sh -b sh-port,sh-fallback",
	"-a -f 7 -r 192.168.1.9:0 -i -w 0 --tun-type gue --tun-port 6080 --tun-csum",
	"-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -b -w 3",
	"-P -t 10.0.0.1:80 -z 192.168.0.1",
	"-Lnc", "-L --stats --exact", "--set 1 2 3", "--start-daemon master --syncid 3",
	"-At 10.1:http", "-A -t 10.0.0.1:80 -p 300 -M 255.255.0.0 -b flag-1,flag-3",
}

// saveRoundTrip checks that a successfully parsed -A/-a/-P command,
// written in the save format, parses back to the same command.
func saveRoundTrip(t *testing.T, c Command) {
	t.Helper()
	var sv ServiceView
	switch c.Kind {
	case CmdAddService:
		sv.Service = c.Service
		if sv.Service.Flags&spec.SchedFlag3 != 0 && (sv.Service.Scheduler == "sh" || sv.Service.Scheduler == "mh") {
			return // ipvsadm writes "-b " with no name here; not restorable
		}
	case CmdAddServer:
		sv.Service = spec.Service{Key: c.Service.Key, Scheduler: "wlc", Netmask: spec.DefaultNetmask(keyIs6(c.Service.Key))}
		sv.Dests = []DestView{{Dest: c.Dest}}
	case CmdAddLaddr:
		sv.Service = spec.Service{Key: c.Service.Key, Scheduler: "wlc", Netmask: spec.DefaultNetmask(keyIs6(c.Service.Key))}
		sv.Service.LocalAddrs = append(sv.Service.LocalAddrs, c.Laddr.Addr)
	default:
		return
	}
	if k := sv.Service.Key; c.Kind != CmdAddService && !k.IsFWMark() && k.Port == 0 {
		// ipvsadm accepts -a (and --add-laddr) naming a zero-port service
		// (it checks the port of -A and -E only), but such a service can
		// exist only persistent: -A refuses it otherwise ("Zero port
		// specified for non-persistent service"), as restore does.
		sv.Service.Persistent, sv.Service.Timeout = true, spec.DefaultPersistentTimeout
	}
	for _, f := range strings.Fields(sv.Service.Scheduler + " " + sv.Service.PE) {
		if f == "ipvsadm" || f == DefaultProg {
			return // restore drops these tokens, as ipvsadm -R does
		}
	}
	var b strings.Builder
	if err := FormatSave(&b, []ServiceView{sv}, true); err != nil {
		t.Fatal(err)
	}
	cmds, err := ParseRules(strings.NewReader(b.String()), "fuzz")
	if err != nil {
		t.Fatalf("saved form %q does not parse: %v", b.String(), err)
	}
	got := normalise(applyRules(t, cmds))
	want := normalise([]ServiceView{sv})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip of %q:\n got %+v\nwant %+v", b.String(), got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return strconv.Quote(line) })()
		args := strings.Fields(line)
		c, err := Parse(args)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Code != ExitUsage && e.Code != ExitPopt) || e.Msg == "" {
				t.Fatalf("%q: bad error %#v", args, err)
			}
			return
		}
		saveRoundTrip(t, c)
	})
}

func FuzzParseRules(f *testing.F) {
	f.Add(saveGolden)
	f.Add("# comment\nipvsadm -C\n\n-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.0.2 -w 70000\n")
	for _, s := range fuzzSeeds {
		f.Add(s + "\n")
	}
	f.Fuzz(func(t *testing.T, text string) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return strconv.Quote(text) })()
		cmds, err := ParseRules(strings.NewReader(text), "fuzz")
		if err != nil {
			var le *LineError
			if errors.As(err, &le) {
				if le.Line < 1 || le.Line > strings.Count(text, "\n")+1 || le.Err == nil {
					t.Fatalf("bad line error %#v", le)
				}
			}
			return
		}
		for _, c := range cmds {
			if !restorable(c.Kind) || c.Line < 1 {
				t.Fatalf("command %+v should not come from a rules file", c)
			}
		}
	})
}
