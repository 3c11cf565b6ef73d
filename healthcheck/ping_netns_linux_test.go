package healthcheck

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestNetnsPingCheck(t *testing.T) {
	cli, _ := hcPair(t)
	long := 10 * time.Second
	tests := []struct {
		name string
		tgt  Target
		ok   bool
		msg  string
	}{
		{"v4", Target{Addr: netip.MustParseAddrPort("198.18.7.2:0"), Timeout: long}, true, "success."},
		{"v6", Target{Addr: netip.MustParseAddrPort("[fd00:7::2]:0"), Timeout: long}, true, "success."},
		{"v4 bound, fwmark", Target{Addr: netip.MustParseAddrPort("198.18.7.2:0"), BindTo: netip.MustParseAddr("198.18.7.1"), FWMark: 3, Timeout: long}, true, "success."},
		{"v4 no such host", Target{Addr: netip.MustParseAddrPort("198.18.7.3:0"), Timeout: time.Second}, false, "PING to [198.18.7.3]"},
		{"v6 no such host", Target{Addr: netip.MustParseAddrPort("[fd00:7::3]:0"), Timeout: time.Second}, false, "PING to [fd00:7::3]"},
		{"no route", Target{Addr: netip.MustParseAddrPort("203.0.113.9:0"), Timeout: long}, false, "unreachable"},
	}
	for _, raw := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name
			if raw {
				name += "/raw"
			}
			t.Run(name, func(t *testing.T) {
				p := &PingCheck{forceRaw: raw}
				for i := 0; i < 2; i++ {
					r := probeIn(t, cli, p, tt.tgt)
					if r.OK != tt.ok || !strings.Contains(r.Msg, tt.msg) {
						t.Errorf("probe %d: got %+v, want ok=%v msg …%q…", i+1, r, tt.ok, tt.msg)
					}
				}
			})
		}
	}
}
