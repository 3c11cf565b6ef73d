package conntrack

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// Several workers create and track connections (both directions) while a
// reaper expires them and a reader lists them; run with -race. At the end
// the counters must match the table exactly.
func TestConcurrentTrackCreateReap(t *testing.T) {
	tb, err := New(Config{Capacity: 2048, Shards: 8, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	d1 := newDest("10.1.0.1", 80, spec.FwdMasq)
	d2 := newDest("10.1.0.2", 80, spec.FwdFullNAT)
	var clock atomic.Int64
	var wg, workers sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			var c Conn
			for i := range 3000 {
				now := clock.Add(int64(time.Millisecond))
				port := uint16(w*5000 + i%700)
				in := KeyFrom(ProtoTCP, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port), ap("192.0.2.1:80"))
				if !tb.Track(in, TCPAck, now, &c) {
					nc := NewConn{In: in, Dest: d1, Fwd: spec.FwdMasq}
					if i%3 == 0 {
						nc.Dest, nc.Fwd = d2, spec.FwdFullNAT
						nc.Local = Endpoint{Addr: netip.MustParseAddr("10.2.0.1").As16(), Port: port}
					}
					_ = tb.Create(&nc, TCPSyn, now, &c)
					continue
				}
				tb.Track(outKeyOf(&c), TCPFin|TCPAck, now, &c)
				if i%5 == 0 {
					tb.ExpireNow(c.Handle, now)
				}
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			tb.Reap(clock.Load()+int64(30*time.Second), 128)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			tb.Snapshot(clock.Load(), nil)
			time.Sleep(time.Millisecond)
		}
	}()
	workers.Wait()
	close(stop)
	wg.Wait()
	recount(t, tb, d1)
	recount(t, tb, d2)
	n := 0
	tb.Range(0, func(*Listing) bool { n++; return true })
	if n != tb.Len() {
		t.Fatalf("Range saw %d, Len %d", n, tb.Len())
	}
	tb.Reap(int64(time.Hour)*10, tb.Capacity())
	if tb.Len() != 0 || counters(d1) != [3]int32{} || counters(d2) != [3]int32{} {
		t.Fatalf("after full reap: len %d d1 %v d2 %v", tb.Len(), counters(d1), counters(d2))
	}
}
