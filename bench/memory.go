package bench

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"

	"github.com/uvs-lb/uvs/conntrack"
	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

// ConntrackBytesPerConn builds a connection table of the given capacity in
// this process, fills it with n UDP NAT connections over two real servers
// and returns the Go heap it grew by, per connection. This is conntrack's
// own figure: everything New preallocates plus what filling adds, divided
// by the connections held.
func ConntrackBytesPerConn(capacity, n int) (float64, error) {
	if n < 1 || n > capacity {
		return 0, fmt.Errorf("conntrack memory: %d connections in a table of %d", n, capacity)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t, err := conntrack.New(conntrack.Config{Capacity: capacity})
	if err != nil {
		return 0, err
	}
	var dests []*sched.Dest
	for _, a := range []string{"198.18.2.2", "198.18.3.2"} {
		d := sched.NewDest(spec.Dest{Addr: netip.MustParseAddr(a), Port: UDPPort, Fwd: spec.FwdMasq, Weight: 1})
		d.SetAvailable(true)
		dests = append(dests, d)
	}
	vip := netip.AddrPortFrom(VIP, UDPPort)
	base := binary.BigEndian.Uint32(FillBase.AsSlice())
	for i := range n {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+uint32(i/64))
		src := netip.AddrPortFrom(netip.AddrFrom4(a), uint16(1024+i%64))
		nc := conntrack.NewConn{In: conntrack.KeyFrom(conntrack.ProtoUDP, src, vip), Fwd: spec.FwdMasq, Dest: dests[i&1]}
		if err := t.Create(&nc, 0, 0, nil); err != nil {
			return 0, fmt.Errorf("conntrack memory: connection %d: %w", i, err)
		}
	}
	if t.Len() != n {
		return 0, fmt.Errorf("conntrack memory: table holds %d connections, want %d", t.Len(), n)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(t)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n), nil
}
