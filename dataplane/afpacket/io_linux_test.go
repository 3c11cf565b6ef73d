package afpacket

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/internal/wait"
)

// TestRingWrap pushes many small bursts through a small ring, reading with
// a batch smaller than a block, so blocks are opened, partly consumed, held
// and returned, and the ring wraps many times over.
//
// The ring has a block for every frame of a burst plus the one the reader
// still holds (the last block of the previous burst, returned by the next
// ReadBatch) and a spare: the kernel closes a block when its timeout
// passes, so on a loaded machine a burst may spread over as many blocks as
// it has frames, and a ring with room for a burst's bytes but fewer blocks
// drops. The filter keeps other frames from taking blocks.
func TestRingWrap(t *testing.T) {
	for _, ring := range []RingMode{RingFrame, RingBlock} {
		t.Run(ring.String(), func(t *testing.T) { testRingWrap(t, ring) })
	}
}

// testRingWrap: with RingFrame the 12 blocks of 4096 bytes are 192 slots of
// 256 bytes, which the 400 frames go round twice.
func testRingWrap(t *testing.T, ring RingMode) {
	tp := newTopo(t, false)
	const bursts, perBurst, port = 40, 10, 9010
	prog, err := AddressFilter(FilterSpec{VIPs: []netip.Addr{ipA}})
	if err != nil {
		t.Fatal(err)
	}
	const blocks = perBurst + 2
	s := open(t, tp.a, Config{Interface: "va", Filter: prog, BlockSize: 4096, BlockCount: blocks, FrameSize: 256,
		PollTimeout: 20 * time.Millisecond, Ring: ring})
	c := udpConn(t, tp.b, 0)
	frames := make([]dataplane.Frame, 3)
	next := 0
	for burst := range bursts {
		for i := range perBurst {
			sendUDP(t, c, ipA, port, fmt.Sprintf("%05d", burst*perBurst+i))
		}
		wait.ForBlocking(t, testTimeout, func() bool {
			n, err := s.ReadBatch(frames)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range frames[:n] {
				u, ok := parseUDP4(f.Data())
				if !ok || u.dport != port {
					continue
				}
				if want := fmt.Sprintf("%05d", next); u.payload != want {
					t.Fatalf("got %q, want %q", u.payload, want)
				}
				next++
			}
			return next == (burst+1)*perBurst
		}, "burst %d: %d frames, got %v; stats %+v", burst, (burst+1)*perBurst,
			wait.Lazy(func() any { return next }), wait.Lazy(func() any { st, _ := s.Stats(); return st }))
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// At least a block per burst: 40 bursts went three times round the
	// 12 blocks.
	if st.Drops != 0 || st.Truncated != 0 || ring == RingBlock && st.BlocksRead < bursts {
		t.Errorf("Stats %+v: want no drops and (block ring) at least %d blocks read (one per burst at least)", st, bursts)
	}
}

// TestReflectInPlace rewrites received frames in the ring and transmits
// them before the next ReadBatch, as a worker does.
func TestReflectInPlace(t *testing.T) {
	tp := newTopo(t, false)
	// Full checksums from b: swapping addresses and ports keeps them valid.
	tp.b.Exec(t, "ethtool", "-K", "vb", "tx", "off")
	prog, err := AddressFilter(FilterSpec{VIPs: []netip.Addr{ipOwned}})
	if err != nil {
		t.Fatal(err)
	}
	const port, count = 9011, 50
	// All 50 are sent before the first read (ringFor).
	s := open(t, tp.a, ringFor(Config{Interface: "va", Filter: prog}, count))
	c := udpConn(t, tp.b, port)
	for i := range count {
		sendUDP(t, c, ipOwned, 7, fmt.Sprintf("r%02d", i))
	}
	frames := make([]dataplane.Frame, 16)
	got := map[string]bool{}
	replies := make(chan string, count)
	go func() {
		buf := make([]byte, 2048)
		_ = c.SetReadDeadline(time.Now().Add(testTimeout))
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				close(replies)
				return
			}
			if from.Addr() == ipOwned && from.Port() == 7 {
				replies <- string(buf[:n])
			}
		}
	}()
	reflected := 0
	wait.ForBlocking(t, testTimeout, func() bool {
		n, err := s.ReadBatch(frames)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			reflect(frames[i].Data())
		}
		m, err := s.WriteBatch(frames[:n])
		if err != nil || m != n {
			t.Fatalf("WriteBatch = %d, %v; want %d", m, err, n)
		}
		reflected += n
		return reflected >= count
	}, "%d datagrams to reflect, got %v", count, wait.Lazy(func() any { return reflected }))
	for p := range replies {
		got[p] = true
		if len(got) == count {
			break
		}
	}
	if len(got) != count {
		t.Fatalf("b received %d of %d reflected datagrams", len(got), count)
	}
}

// reflect swaps Ethernet, IPv4 and UDP source and destination in place;
// checksums stay valid.
func reflect(b []byte) {
	for i := range 6 {
		b[i], b[6+i] = b[6+i], b[i]
	}
	for i := range 4 {
		b[26+i], b[30+i] = b[30+i], b[26+i]
	}
	l4 := 14 + int(b[14]&0xf)*4
	b[l4], b[l4+2] = b[l4+2], b[l4]
	b[l4+1], b[l4+3] = b[l4+3], b[l4+1]
}

// ioPair is a socket in a sending to a socket in b, both filtered to the
// test traffic.
func ioPair(t testing.TB, tx, rx Config) (*topo, *Socket, *Socket, []dataplane.Frame) {
	tp := newTopo(t, false)
	prog, err := AddressFilter(FilterSpec{VIPs: []netip.Addr{ipB}})
	if err != nil {
		t.Fatal(err)
	}
	rx.Interface, rx.Filter = "vb", prog
	tx.Interface = "va"
	sa := open(t, tp.a, tx)
	sb := open(t, tp.b, rx)
	out := make([]dataplane.Frame, 64)
	for i := range out {
		buf := udpFrame(t, tp.aIf.HardwareAddr, tp.bIf.HardwareAddr, ipA, ipB, 9, "0123456789012345678901234567890123456789012345678901234567890123")
		out[i] = dataplane.Frame{Buf: buf, Len: len(buf), Ifindex: tp.aIf.Index}
	}
	return tp, sa, sb, out
}

// TestNoAllocs checks WriteBatch and ReadBatch allocate nothing, including
// when ReadBatch has to poll.
func TestNoAllocs(t *testing.T) {
	_, sa, sb, out := ioPair(t, Config{}, Config{PollTimeout: 500 * time.Millisecond})
	out = out[:8]
	in := make([]dataplane.Frame, 16)
	var failed string
	allocs := testing.AllocsPerRun(50, func() {
		if n, err := sa.WriteBatch(out); n != len(out) || err != nil {
			failed = fmt.Sprintf("WriteBatch = %d, %v", n, err)
			return
		}
		for got := 0; got < len(out); {
			n, err := sb.ReadBatch(in)
			if err != nil || n == 0 {
				failed = fmt.Sprintf("ReadBatch = %d, %v after %d frames", n, err, got)
				return
			}
			got += n
		}
	})
	if failed != "" {
		t.Fatal(failed)
	}
	if allocs != 0 {
		t.Errorf("WriteBatch+ReadBatch: %v allocs per run, want 0", allocs)
	}
}

// BenchmarkWriteRead sends 64-frame batches of 106-byte UDP frames from one
// socket over a veth pair into another socket's ring and reads them in
// batches of 64 on another goroutine, with at most window frames in flight
// (so it measures what passes without loss, not how fast a ring overflows).
// ns/op is per frame; lost/op counts frames that never arrived (given up
// after a poll timeout).
func BenchmarkWriteRead(b *testing.B) {
	for _, ring := range []RingMode{RingFrame, RingBlock} {
		b.Run(ring.String(), func(b *testing.B) { benchWriteRead(b, ring) })
	}
}

func benchWriteRead(b *testing.B, ring RingMode) {
	_, sa, sb, out := ioPair(b, Config{}, Config{PollTimeout: 20 * time.Millisecond, Ring: ring})
	const window = 512
	in := make([]dataplane.Frame, 64)
	var sent, acked atomic.Int64 // acked: received or given up as lost
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for int(sent.Load()) < b.N {
			if sent.Load()-acked.Load() > window {
				runtime.Gosched()
				continue
			}
			n, err := sa.WriteBatch(out[:min(len(out), b.N-int(sent.Load()))])
			if err != nil {
				b.Error(err)
				return
			}
			sent.Add(int64(n))
		}
	}()
	got, lost := 0, 0
	for int(acked.Load()) < b.N {
		n, err := sb.ReadBatch(in)
		if err != nil {
			b.Fatal(err)
		}
		got += n
		if n == 0 {
			// Nothing for a poll timeout: what is in flight was lost.
			lost = int(sent.Load()) - got
		}
		acked.Store(int64(got + lost))
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(lost)/float64(b.N), "lost/op")
	b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "rx-frames/s")
}
