package lports

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

var linuxDefault = portRange{32768, 60999}

// TestChooseLocalPorts: a chosen range is the longest run in 1024–65535
// outside the host's ephemeral range and its listening ports; a given one
// overlapping the ephemeral range is refused with both ranges named,
// unless the overlap is reserved.
func TestChooseLocalPorts(t *testing.T) {
	for _, c := range []struct {
		name     string
		min, max uint16
		host     portRange
		reserved []portRange
		used     []uint16
		want     portRange
		err      string // substring; "" for success
	}{
		{name: "chosen, Linux default", host: linuxDefault, want: portRange{1024, 32767}},
		{name: "chosen, a listener splits it", host: linuxDefault, used: []uint16{8080, 22, 40000},
			want: portRange{8081, 32767}},
		{name: "chosen, ephemeral range low", host: portRange{1024, 20000}, want: portRange{20001, 65535}},
		{name: "chosen, ephemeral range everything", host: portRange{1024, 65535},
			err: "no FULLNAT local port free in 1024-65535 outside net.ipv4.ip_local_port_range 1024-65535"},
		{name: "given, outside", min: 61000, max: 65535, host: linuxDefault, want: portRange{61000, 65535}},
		{name: "given, below", min: 10000, max: 32767, host: linuxDefault, want: portRange{10000, 32767}},
		{name: "given, overlapping", min: 30000, max: 40000, host: linuxDefault,
			err: "FULLNAT local port range 30000-40000 overlaps net.ipv4.ip_local_port_range 32768-60999 (port 32768"},
		{name: "given, overlap reserved", min: 30000, max: 40000, host: linuxDefault,
			reserved: []portRange{{32768, 40000}}, want: portRange{30000, 40000}},
		{name: "given, overlap partly reserved", min: 30000, max: 40000, host: linuxDefault,
			reserved: []portRange{{32768, 39999}}, err: "(port 40000, not in net.ipv4.ip_local_reserved_ports)"},
		{name: "given, empty", min: 5, max: 3, host: linuxDefault, err: "FULLNAT local port range 5-3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := chooseLocalPorts(c.min, c.max, c.host, c.reserved, c.used)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

// TestLocalPortsHere: in this namespace, a chosen range never overlaps
// ip_local_port_range, and a given range overlapping it is refused.
func TestLocalPortsHere(t *testing.T) {
	host, err := readPortRange(portRangePath)
	if err != nil {
		t.Fatalf("%s: %v", portRangePath, err)
	}
	lo, hi, err := Choose(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if (portRange{lo, hi}).overlaps(host) || lo < lportFloor {
		t.Fatalf("chosen range %d-%d overlaps ip_local_port_range %s or starts below %d", lo, hi, host, lportFloor)
	}
	if _, _, err := Choose(host.lo, host.hi); err == nil && host.lo != 0 {
		if b, _ := readPortRangeList(reservedPortPath); len(b) == 0 {
			t.Fatalf("range %s equal to ip_local_port_range accepted", host)
		}
	}
}

// readPortRangeList reads ip_local_reserved_ports (nil if absent).
func readPortRangeList(path string) ([]portRange, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parsePortList(strings.TrimSpace(string(b)))
}

func TestParsePortRange(t *testing.T) {
	if r, err := parsePortRange("32768\t60999\n"); err != nil || r != linuxDefault {
		t.Fatalf("got %v, %v", r, err)
	}
	for _, s := range []string{"", "1", "2 1", "1 70000", "a b", "1 2 3"} {
		if _, err := parsePortRange(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
	got, err := parsePortList("8080,10000-10005")
	if err != nil || !slices.Equal(got, []portRange{{8080, 8080}, {10000, 10005}}) {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, s := range []string{",", "1-", "5-3", "x", "70000"} {
		if _, err := parsePortList(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
}

const procTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
`

func TestBoundPorts(t *testing.T) {
	if got := boundPorts([]byte(procTCP), true); !slices.Equal(got, []uint16{8080}) {
		t.Fatalf("listening: %v, want [8080]", got)
	}
	if got := boundPorts([]byte(procTCP), false); !slices.Equal(got, []uint16{8080, 40000}) {
		t.Fatalf("bound: %v, want [8080 40000]", got)
	}
}

// FuzzLocalPortsParse: the /proc parsers never panic, and whatever they
// return is well formed.
func FuzzLocalPortsParse(f *testing.F) {
	f.Add("32768\t60999", []byte(procTCP))
	f.Add("8080,10000-10005", []byte("x\n 0: 0:0 0:0 0A"))
	f.Add("", []byte(""))
	f.Fuzz(func(t *testing.T, s string, b []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q, %d bytes %.200q", len(s), s, len(b), b) })()
		if r, err := parsePortRange(s); err == nil && r.lo > r.hi {
			t.Fatalf("%q: range %v", s, r)
		}
		if l, err := parsePortList(s); err == nil {
			for _, r := range l {
				if r.lo > r.hi {
					t.Fatalf("%q: item %v", s, r)
				}
			}
		}
		for _, listen := range []bool{true, false} {
			for _, p := range boundPorts(b, listen) {
				if p == 0 {
					t.Fatal("port 0 reported")
				}
			}
		}
	})
}
