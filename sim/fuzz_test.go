package sim

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

func FuzzParseEvents(f *testing.F) {
	f.Add("5s add -t 10.0.0.100:80 -r 10.0.0.9:80 -m -w 2\n")
	f.Add("10 del -t 10.0.0.100:80 -r 10.0.0.9:80\n# c\n\n")
	f.Add("12s weight -t 10.0.0.100:80 -r 10.0.0.7:80 4\n")
	f.Add("1m overload -u [2001:db8::1]:53 -r [2001:db8::2]:53\n2m clear -f 7 -r 10.0.0.1:0\n")
	f.Add("1s edit -t 10.0.0.1:80 -r 10.0.0.2:80 -x 10 -y 5\n")
	f.Add("x\n1s\n1s weight\n-1s del\n1e300 add\n")
	f.Fuzz(func(t *testing.T, in string) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(in), in) })()
		evs, err := ParseEvents(strings.NewReader(in), "f.events")
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.File != "f.events" {
				t.Fatalf("error %v is not an InputError naming the file", err)
			}
			return
		}
		for i, ev := range evs {
			if ev.At < 0 || ev.At > maxSimTime || ev.Verb < VerbAdd || ev.Verb > VerbClear || ev.Line < 1 {
				t.Fatalf("bad event %+v", ev)
			}
			if i > 0 && evs[i-1].At > ev.At {
				t.Fatal("events not sorted")
			}
			if !ev.Dest.Addr.IsValid() {
				t.Fatalf("event without destination %+v", ev)
			}
		}
	})
}

func FuzzParseTrace(f *testing.F) {
	f.Add("time,proto,client,vip,duration\n0.25,tcp,172.16.0.1:40000,10.0.0.100:80,2s\n")
	f.Add("TIME, Proto ,client,vip,duration\n# c\n\n1s,udp,[2001:db8::1]:5,[2001:db8::2]:53,0\n0,sctp,1.2.3.4:5,5.6.7.8:9,1e-3\n")
	f.Add("time,proto,client,vip,duration\nNaN,tcp,1.2.3.4:5,5.6.7.8:9,Inf\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(in), in) })()
		arr, err := ParseTrace(strings.NewReader(in), "f.csv")
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.File != "f.csv" {
				t.Fatalf("error %v is not an InputError naming the file", err)
			}
			return
		}
		for i, a := range arr {
			if a.At < 0 || a.At > maxSimTime || a.Hold < 0 || a.Hold > maxSimTime {
				t.Fatalf("out of range %+v", a)
			}
			if i > 0 && arr[i-1].At > a.At {
				t.Fatal("not sorted")
			}
			if !a.Client.IsValid() || !a.VIP.IsValid() {
				t.Fatalf("invalid address %+v", a)
			}
		}
	})
}

func FuzzParseDist(f *testing.F) {
	for _, s := range []string{"exp:2s", "const:1ms", "uniform:1s-5s", "3s", "uniform:-", "exp:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(in), in) })()
		d, err := ParseDist(in)
		if err != nil {
			return
		}
		if d.Mean() < 0 {
			t.Fatalf("%q: negative mean", in)
		}
		if _, err := ParseDist(d.String()); err != nil {
			t.Fatalf("%q: String %q does not parse: %v", in, d.String(), err)
		}
	})
}
