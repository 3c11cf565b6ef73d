package conntrack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

const sec = int64(time.Second)

func newTable(t testing.TB, capacity int) *Table {
	t.Helper()
	tb, err := New(Config{Capacity: capacity, Shards: 16, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func newDest(addr string, port uint16, fwd spec.Fwd) *sched.Dest {
	d := sched.NewDest(spec.Dest{Addr: netip.MustParseAddr(addr), Port: port, Fwd: fwd, Weight: 1})
	d.SetAvailable(true)
	return d
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func tcpKey(src, dst string) Key { return KeyFrom(ProtoTCP, ap(src), ap(dst)) }

// counters returns (active, inactive, persist) of d.
func counters(d *sched.Dest) [3]int32 {
	return [3]int32{d.ActiveConns(), d.InactConns(), d.PersistConns()}
}

// outKeyOf returns the reply key the data plane would see for c.
func outKeyOf(c *Conn) Key {
	dst := c.Client
	if c.Fwd == spec.FwdFullNAT {
		dst = c.Local
	}
	return Key{Proto: c.Proto, Src: c.Real.Addr, SrcPort: c.Real.Port, Dst: dst.Addr, DstPort: dst.Port}
}

// recount checks that d's counters equal what the table's live entries
// imply.
func recount(t *testing.T, tb *Table, d *sched.Dest) {
	t.Helper()
	var want [3]int32
	tb.Range(0, func(l *Listing) bool {
		if l.Dest != d {
			return true
		}
		switch {
		case l.Template:
			want[2]++
		case l.Flags&FlagInactive != 0:
			want[1]++
		default:
			want[0]++
		}
		return true
	})
	if got := counters(d); got != want {
		t.Fatalf("dest counters (active, inact, persist) = %v, table implies %v", got, want)
	}
}
