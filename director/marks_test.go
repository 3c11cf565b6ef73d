package director

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/uvs-lb/uvs/fwmark"
)

func TestMarkAddrs(t *testing.T) {
	for _, tt := range []struct {
		dst  string
		neg  bool
		want string
	}{
		{"10.0.1.200/32", false, "[10.0.1.200]"},
		{"2001:db8::100/128", false, "[2001:db8::100]"},
		{"10.0.1.0/30", false, "[]"}, // a prefix may hold other hosts' addresses
		{"10.0.1.200/32", true, "[]"},
		{"", false, "[]"},
	} {
		r := fwmark.Rule{Verdict: fwmark.VerdictMark, DstNeg: tt.neg}
		if tt.dst != "" {
			r.Dst = netip.MustParsePrefix(tt.dst)
		}
		if got := fmt.Sprint(markAddrs(r)); got != tt.want {
			t.Errorf("markAddrs(%s neg %v) = %s, want %s", tt.dst, tt.neg, got, tt.want)
		}
	}
}
