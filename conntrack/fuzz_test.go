package conntrack

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

// FuzzOps runs random operation sequences on a small table and checks the
// invariants after every step: counters never negative and equal to what
// the live entries imply, Len equal to the number of live entries, every
// live connection reachable by both keys, the index exactly the live keys.
//
// Only the first maxFuzzOps bytes are operations. The invariant check walks
// the table several times per step, so one input costs O(len²); Go's
// fuzzer minimises every input that finds new coverage by removing bytes
// and subsets of bytes (O(len²) runs) before it counts executions again.
// Unbounded, a 200-byte input took minutes of minimisation at 0 execs/s,
// which was the "stall" of issue #15 (the per-input watchdog below never
// fired: no single input hung). Capped, the minimiser cuts the ignored
// tail in a few runs and one input costs a few milliseconds at most.
func FuzzOps(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{0, 0x12, 0x40, 0x81, 0x22, 0x03, 0xf4, 0x05, 0x16, 0x27})
	f.Add([]byte("\x00\x10\x20\x30\x01\x11\x21\x31\x05\x05\x05\x06\x06\x07"))
	// Full of SYN_RECV (evictions), then drop_entry and drop_packet.
	f.Add([]byte("\x00\x08\x10\x18\x20\x28\x30\x38\x40\x48\xfc\x04\x05\x05\x00\x08\xe5\x2d\x05"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		defer watchdog(ops)()
		tb, err := New(Config{Capacity: 8, Shards: 2, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		dests := []*sched.Dest{
			newDest("10.1.0.1", 80, spec.FwdMasq),
			newDest("10.1.0.2", 0, spec.FwdRoute),
			newDest("10.1.0.3", 80, spec.FwdFullNAT),
		}
		fwds := []spec.Fwd{spec.FwdMasq, spec.FwdRoute, spec.FwdFullNAT}
		flagsOf := []uint8{TCPSyn, TCPAck, TCPFin | TCPAck, TCPRst, 0, TCPSyn | TCPAck}
		now := int64(0)
		var c Conn
		if len(ops) > maxFuzzOps {
			ops = ops[:maxFuzzOps]
		}
		for i, op := range ops {
			arg := int(op >> 3)
			proto := ProtoTCP
			if arg&1 == 1 {
				proto = ProtoUDP
			}
			in := KeyFrom(proto, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(1000+arg%6)), ap("192.0.2.1:80"))
			di := arg % 3
			tk := NewTemplateKey(ProtoTCP, netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("192.0.2.1"), uint16(arg%2))
			switch op & 7 {
			case 0, 1:
				th, _, _ := tb.LookupTemplate(tk, now)
				nc := NewConn{In: in, Fwd: fwds[di], Dest: dests[di], Template: th}
				if fwds[di] == spec.FwdFullNAT {
					nc.Local = EndpointFrom(netip.AddrPortFrom(netip.MustParseAddr("10.2.0.1"), uint16(5000+arg)))
				}
				err := tb.Create(&nc, flagsOf[arg%len(flagsOf)], now, &c)
				if err != nil && !errors.Is(err, ErrFull) && !errors.Is(err, ErrExists) && !errors.Is(err, ErrDropped) {
					t.Fatal(err)
				}
			case 2:
				tb.Track(in, flagsOf[arg%len(flagsOf)], now, &c)
			case 3:
				if tb.Lookup(in, now, &c) {
					tb.Track(outKeyOf(&c), flagsOf[arg%len(flagsOf)], now, &c)
				}
			case 4:
				if arg >= 28 { // the defence levels (occupancy of 6 of 8 entries switches them)
					lvl := arg & 3
					if err := tb.SetDefense(Defense{DropEntry: lvl, DropPacket: 3 - lvl, SecureTCP: lvl, AmemThresh: 2, AmDropRate: 2}); err != nil {
						t.Fatal(err)
					}
					break
				}
				now += int64(arg) * int64(7*time.Second)
			case 5:
				tb.Reap(now, 1+arg%9)
			case 6:
				if _, _, ok := tb.LookupTemplate(tk, now); !ok {
					tb.InsertTemplate(tk, dests[di], time.Duration(1+arg)*time.Second, now)
				}
			case 7:
				if arg%4 == 0 {
					dests[di].SetAvailable(false)
					tb.ExpireDest(dests[di], now)
					dests[di].SetAvailable(true)
				} else if tb.Lookup(in, now, &c) {
					tb.ExpireNow(c.Handle, now)
				}
			}
			checkInvariants(t, tb, dests, i)
		}
		tb.Reap(now+int64(1000*time.Hour), 8)
		tb.Reap(now+int64(2000*time.Hour), 8) // templates after their conns
		if tb.Len() != 0 {
			t.Fatalf("Len %d after expiring everything", tb.Len())
		}
		for _, d := range dests {
			if counters(d) != [3]int32{} {
				t.Fatalf("dest %v counters %v at the end", d.Addr(), counters(d))
			}
		}
	})
}

func checkInvariants(t *testing.T, tb *Table, dests []*sched.Dest, step int) {
	t.Helper()
	for _, d := range dests {
		c := counters(d)
		if c[0] < 0 || c[1] < 0 || c[2] < 0 {
			t.Fatalf("step %d: negative counters %v", step, c)
		}
		recount(t, tb, d)
	}
	n := 0
	ctl := map[Handle]int32{}
	var nctl []Listing
	tb.Range(0, func(l *Listing) bool {
		n++
		if l.Template {
			nctl = append(nctl, *l)
			return true
		}
		var c Conn
		in := KeyFrom(l.Proto, l.Client, l.Virtual)
		if !tb.Lookup(in, -1<<62, &c) || c.Handle != l.Handle || c.Dir != DirIn {
			t.Fatalf("step %d: live conn %v not reachable by its inbound key", step, l.Client)
		}
		if !tb.Lookup(outKeyOf(&c), -1<<62, &c) || c.Handle != l.Handle || c.Dir != DirOut {
			t.Fatalf("step %d: live conn %v not reachable by its outbound key", step, l.Client)
		}
		if e := &tb.ents[l.Handle.idx()]; e.control != 0 {
			ctl[mkHandle(e.control, 0)]++
		}
		return true
	})
	if n != tb.Len() {
		t.Fatalf("step %d: %d live entries, Len %d", step, n, tb.Len())
	}
	checkIndex(t, tb)
	for _, l := range nctl {
		if want := ctl[mkHandle(l.Handle.idx(), 0)]; l.NControl != want {
			t.Fatalf("step %d: template n_control %d, %d conns point at it", step, l.NControl, want)
		}
	}
}

// maxFuzzOps bounds the operations one FuzzOps input runs: 64 steps on an
// 8-entry table fill, expire and refill it many times over.
const maxFuzzOps = 64

// inputDeadline is how long one fuzz input may run before watchdog calls
// it a hang: the slowest seed takes well under a millisecond, so 5 s is a
// hang even on a loaded machine.
const inputDeadline = 5 * time.Second

// watchdog arms a timer that panics, with every goroutine's stack and the
// input, if the returned stop function is not called within
// inputDeadline. Go's fuzzer has no per-input timeout: a hung input shows
// as 0 execs/s and the run still ends in PASS. A panic on the timer's
// goroutine kills the worker process, so the fuzzer reports the input as
// a crasher and saves it under testdata/fuzz.
func watchdog(input []byte) (stop func()) {
	tm := time.AfterFunc(inputDeadline, func() {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		panic(fmt.Sprintf("fuzz input ran longer than %v (a hang): input %x\n%s", inputDeadline, input, buf[:n]))
	})
	return func() { tm.Stop() }
}
