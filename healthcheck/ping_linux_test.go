package healthcheck

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pingSkipUnlessAllowed skips when this process may open neither an ICMP
// datagram socket nor a raw one.
func pingSkipUnlessAllowed(t *testing.T, v6, raw bool) {
	t.Helper()
	_, r, err := pingListenProbe(v6, raw)
	if err == nil && (r || !raw) {
		return
	}
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		if os.Getenv("CI") != "" && os.Geteuid() == 0 {
			t.Fatalf("root cannot open an ICMP socket: %v", err)
		}
		t.Skipf("no ICMP socket allowed (needs root, CAP_NET_RAW or net.ipv4.ping_group_range): %v", err)
	}
	if err != nil {
		t.Fatalf("ICMP socket: %v", err)
	}
}

func pingListenProbe(v6, raw bool) (bool, bool, error) {
	c, r, err := pingListen(v6, Target{}, raw)
	if err != nil {
		return false, false, err
	}
	c.Close()
	return true, r, nil
}

func TestPingCheckLoopback(t *testing.T) {
	for _, raw := range []bool{false, true} {
		for _, addr := range []string{"127.0.0.1", "::1"} {
			name := addr
			if raw {
				name += "/raw"
			}
			t.Run(name, func(t *testing.T) {
				v6 := strings.Contains(addr, ":")
				pingSkipUnlessAllowed(t, v6, raw)
				p := &PingCheck{forceRaw: raw}
				tgt := Target{Addr: netip.AddrPortFrom(netip.MustParseAddr(addr), 0), Timeout: 10 * time.Second}
				for i := 1; i <= 3; i++ {
					r := p.Probe(context.Background(), tgt)
					if !r.OK {
						t.Fatalf("probe %d: %+v", i, r)
					}
					if got := p.seq.Load(); got != uint32(i) {
						t.Errorf("sequence after %d probes: %d", i, got)
					}
				}
			})
		}
	}
}

func TestPingCheckBindTo(t *testing.T) {
	pingSkipUnlessAllowed(t, false, false)
	r := (&PingCheck{}).Probe(context.Background(), Target{
		Addr:   netip.MustParseAddrPort("127.0.0.1:0"),
		BindTo: netip.MustParseAddr("127.0.0.1"), Timeout: 10 * time.Second,
	})
	if !r.OK {
		t.Errorf("bound probe: %+v", r)
	}
}

func TestPingCheckCancelled(t *testing.T) {
	pingSkipUnlessAllowed(t, false, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// 192.0.2.1 (TEST-NET-1) should not answer; cancelled anyway.
	r := (&PingCheck{}).Probe(ctx, Target{Addr: netip.MustParseAddrPort("192.0.2.1:0"), Timeout: time.Hour})
	if r.OK {
		t.Errorf("cancelled probe succeeded: %+v", r)
	}
}

func TestPingReplyMatches(t *testing.T) {
	p := &PingCheck{}
	_ = p
	reply := func(typ byte, id, seq uint16, data []byte) []byte {
		b := []byte{typ, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq)}
		return append(b, data...)
	}
	tests := []struct {
		name    string
		b       []byte
		proto   int
		checkID bool
		ok      bool
	}{
		{"v4 reply", reply(0, 9, 5, pingPayload), 1, true, true},
		{"v4 other id, dgram", reply(0, 1, 5, pingPayload), 1, false, true},
		{"v4 other id, raw", reply(0, 1, 5, pingPayload), 1, true, false},
		{"v4 other seq", reply(0, 9, 6, pingPayload), 1, true, false},
		{"v4 request", reply(8, 9, 5, pingPayload), 1, true, false},
		{"v4 other data", reply(0, 9, 5, []byte("x")), 1, true, false},
		{"v6 reply", reply(129, 9, 5, pingPayload), 58, true, true},
		{"v6 request", reply(128, 9, 5, pingPayload), 58, true, false},
		{"short", []byte{0}, 1, true, false},
	}
	for _, tt := range tests {
		if got := PingReplyMatches(tt.b, tt.proto, tt.checkID, 9, 5); got != tt.ok {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.ok)
		}
	}
}
