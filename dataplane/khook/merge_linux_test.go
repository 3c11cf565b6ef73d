package khook

import (
	"net/netip"
	"testing"

	"github.com/uvs-lb/uvs/spec"
)

// FuzzMergeRanges checks that merging FULLNAT port ranges keeps exactly the
// same ports and leaves no two ranges of one (addr, proto) overlapping or
// touching, which an nftables interval set would reject or split.
func FuzzMergeRanges(f *testing.F) {
	f.Add([]byte{0, 6, 0, 100, 0, 200, 0, 6, 0, 150, 1, 44})
	f.Add([]byte{1, 17, 255, 255, 255, 255, 1, 17, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		addrs := [2]netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("2001:db8::1")}
		var rs []rangeKey
		for ; len(b) >= 6 && len(rs) < 16; b = b[6:] {
			lo, hi := uint16(b[2])<<8|uint16(b[3]), uint16(b[4])<<8|uint16(b[5])
			if lo > hi {
				lo, hi = hi, lo
			}
			rs = append(rs, rangeKey{addrs[b[0]&1], spec.Proto(b[1] & 1), lo, hi})
		}
		covered := func(set []rangeKey, a netip.Addr, p spec.Proto, port uint16) bool {
			for _, r := range set {
				if r.addr == a && r.proto == p && r.first <= port && port <= r.last {
					return true
				}
			}
			return false
		}
		in := append([]rangeKey(nil), rs...)
		out := mergeRanges(rs)
		for i := 1; i < len(out); i++ {
			p, c := out[i-1], out[i]
			if p.addr == c.addr && p.proto == c.proto && uint32(c.first) <= uint32(p.last)+1 {
				t.Fatalf("ranges %v and %v overlap or touch", p, c)
			}
		}
		for _, r := range in { // every boundary, then a sample of the rest
			for _, port := range []int{int(r.first) - 1, int(r.first), int(r.last), int(r.last) + 1} {
				if port >= 0 && port <= 0xffff && covered(in, r.addr, r.proto, uint16(port)) != covered(out, r.addr, r.proto, uint16(port)) {
					t.Fatalf("port %d of %s/%d: coverage changed", port, r.addr, r.proto)
				}
			}
		}
		for _, a := range addrs {
			for pr := spec.Proto(0); pr < 2; pr++ {
				for port := 0; port <= 0xffff; port += 97 {
					if covered(in, a, pr, uint16(port)) != covered(out, a, pr, uint16(port)) {
						t.Fatalf("port %d of %s/%d: coverage changed", port, a, pr)
					}
				}
			}
		}
	})
}
