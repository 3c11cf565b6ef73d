package afpacket

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/internal/wait"
)

// TestFrameRingNoBlockTimer: a frame ring hands a lone frame over as soon
// as it has arrived, whatever BlockTimeout says (it has no block timer);
// a block ring with a 60 s timer keeps a lone frame in its open block.
func TestFrameRingNoBlockTimer(t *testing.T) {
	for _, ring := range []RingMode{RingFrame, RingBlock} {
		t.Run(ring.String(), func(t *testing.T) {
			tp := newTopo(t, false)
			prog, err := AddressFilter(FilterSpec{VIPs: []netip.Addr{ipA}})
			if err != nil {
				t.Fatal(err)
			}
			s := open(t, tp.a, Config{Interface: "va", Filter: prog, Ring: ring,
				BlockTimeout: time.Minute, PollTimeout: 100 * time.Millisecond})
			c := udpConn(t, tp.b, 0)
			sendUDP(t, c, ipA, 9020, "lone")
			frames := make([]dataplane.Frame, 8)
			got := false
			read := func() bool {
				n, err := s.ReadBatch(frames)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range frames[:n] {
					if u, ok := parseUDP4(f.Data()); ok && u.payload == "lone" {
						got = true
					}
				}
				return got
			}
			if ring == RingFrame {
				wait.ForBlocking(t, testTimeout, read, "the lone frame")
				return
			}
			// Three poll timeouts: a minute's timer does not fire.
			for range 3 {
				if read() {
					t.Fatal("a block ring with a 60 s block timeout handed over a lone frame")
				}
			}
		})
	}
}

// TestFrameRingLongFrames: frames longer than a slot (jumbo frames here)
// come whole, in order with the short ones around them, through the
// receive queue; when the receive queue is full, the kernel gives only
// their head, and they are dropped and counted, never served cut.
func TestFrameRingLongFrames(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rcvbuf  int
		offload bool
	}{{"offload", 0, true}, {"no-offload", 0, false}, {"queue-full", 1, true}} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopo(t, false)
			tp.a.IP(t, "link", "set", "va", "mtu", "9000")
			tp.b.IP(t, "link", "set", "vb", "mtu", "9000")
			prog, err := AddressFilter(FilterSpec{VIPs: []netip.Addr{ipA}})
			if err != nil {
				t.Fatal(err)
			}
			s := open(t, tp.a, ringFor(Config{Interface: "va", Filter: prog, ReceiveBuffer: tc.rcvbuf,
				DisableOffload: !tc.offload, PollTimeout: 20 * time.Millisecond}, 16))
			c := udpConn(t, tp.b, 0)
			// short, long, long, short, long, short: all sent before the
			// first read.
			var want []string
			for i, long := range []bool{false, true, true, false, true, false} {
				p := fmt.Sprintf("p%d-", i)
				if long {
					p += strings.Repeat("x", 7000)
				}
				want = append(want, p)
				sendUDP(t, c, ipA, 9021, p)
			}
			var got []string
			frames := make([]dataplane.Frame, 2) // fewer than the frames: batches end in the middle
			wait.ForBlocking(t, testTimeout, func() bool {
				n, err := s.ReadBatch(frames)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range frames[:n] {
					u, ok := parseUDP4(f.Data())
					if !ok || u.dport != 9021 {
						continue
					}
					if f.Off < DefaultHeadroom || f.Off+f.Len > len(f.Buf) {
						t.Errorf("frame %q: Off %d Len %d len(Buf) %d: headroom or bounds wrong", u.payload[:3], f.Off, f.Len, len(f.Buf))
					}
					got = append(got, u.payload)
				}
				return len(got) > 0 && got[len(got)-1] == want[len(want)-1]
			}, "the last frame sent; got %v", wait.Lazy(func() any { return len(got) }))
			st, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if tc.rcvbuf == 0 {
				if !slices.Equal(got, want) || st.FramesCopied != 3 || st.Truncated != 0 {
					t.Errorf("got %d frames (%.8q), FramesCopied %d, Truncated %d; want %d frames in order, 3 copied",
						len(got), got, st.FramesCopied, st.Truncated, len(want))
				}
				return
			}
			// The smallest receive buffer holds one long frame: the first
			// is copied, the two after it truncated and dropped.
			short := []string{want[0], want[1], want[3], want[5]}
			if !slices.Equal(got, short) || st.FramesCopied != 1 || st.Truncated != 2 {
				t.Errorf("got %d frames (%.8q), FramesCopied %d, Truncated %d; want %.8q, 1 copied, 2 truncated",
					len(got), got, st.FramesCopied, st.Truncated, short)
			}
		})
	}
}

// TestFrameRingNoAllocs: reading frames longer than a slot allocates
// nothing either.
func TestFrameRingNoAllocs(t *testing.T) {
	tp := newTopo(t, false)
	tp.a.IP(t, "link", "set", "va", "mtu", "9000")
	tp.b.IP(t, "link", "set", "vb", "mtu", "9000")
	prog, err := AddressFilter(FilterSpec{VIPs: []netip.Addr{ipB}})
	if err != nil {
		t.Fatal(err)
	}
	sa := open(t, tp.a, Config{Interface: "va"})
	sb := open(t, tp.b, Config{Interface: "vb", Filter: prog, PollTimeout: 500 * time.Millisecond})
	out := make([]dataplane.Frame, 4)
	for i := range out {
		buf := udpFrame(t, tp.aIf.HardwareAddr, tp.bIf.HardwareAddr, ipA, ipB, 9, strings.Repeat("y", 100+i*2500))
		out[i] = dataplane.Frame{Buf: buf, Len: len(buf), Ifindex: tp.aIf.Index}
	}
	in := make([]dataplane.Frame, 16)
	var failed string
	allocs := testing.AllocsPerRun(20, func() {
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
	if st, _ := sb.Stats(); st.FramesCopied == 0 {
		t.Fatalf("no frame went through the receive queue (stats %+v): the test does not test it", st)
	}
	if allocs != 0 {
		t.Errorf("WriteBatch+ReadBatch with long frames: %v allocs per run, want 0", allocs)
	}
}

// BenchmarkRingRTT measures the round trip of one UDP datagram at a time
// (no load) from b to a reflector on a socket in a and back: one read
// through the ring and one send per round trip. It reports the p50 and p99
// round trip in µs for each ring mode; nothing is asserted.
func BenchmarkRingRTT(b *testing.B) {
	for _, ring := range []RingMode{RingFrame, RingBlock} {
		b.Run(ring.String(), func(b *testing.B) { benchRTT(b, ring) })
	}
}

func benchRTT(b *testing.B, ring RingMode) {
	tp := newTopo(b, false)
	tp.b.Exec(b, "ethtool", "-K", "vb", "tx", "off")
	prog, err := AddressFilter(FilterSpec{VIPs: []netip.Addr{ipOwned}})
	if err != nil {
		b.Fatal(err)
	}
	s := open(b, tp.a, Config{Interface: "va", Filter: prog, Ring: ring, PollTimeout: 20 * time.Millisecond})
	c := udpConn(b, tp.b, 9030)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		frames := make([]dataplane.Frame, 64)
		for {
			select {
			case <-done:
				return
			default:
			}
			n, err := s.ReadBatch(frames)
			if err != nil {
				return
			}
			for i := range n {
				reflect(frames[i].Data())
			}
			_, _ = s.WriteBatch(frames[:n])
		}
	}()
	b.Cleanup(func() { close(done); <-stopped })
	rtts := make([]time.Duration, 0, b.N)
	buf := make([]byte, 64)
	dst := netip.AddrPortFrom(ipOwned, 7)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := c.WriteToUDPAddrPort([]byte("ping"), dst); err != nil {
			b.Fatal(err)
		}
		_ = c.SetReadDeadline(start.Add(time.Second))
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			continue // lost: not counted
		}
		rtts = append(rtts, time.Since(start))
	}
	b.StopTimer()
	if len(rtts) == 0 {
		b.Fatal("no reply")
	}
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(b.N-len(rtts)), "lost")
}

// FuzzFrameSlot feeds arbitrary TPACKET_V2 slot contents (header, headroom
// and frame) to the slot parser: it never panics, and a frame it serves
// lies inside its buffer behind at least the headroom the VLAN tag needs.
func FuzzFrameSlot(f *testing.F) {
	const frameSize = 512
	seed := make([]byte, frameSize)
	binary.NativeEndian.PutUint32(seed[v2Len:], 60)
	binary.NativeEndian.PutUint32(seed[v2Snaplen:], 60)
	binary.NativeEndian.PutUint16(seed[v2Mac:], uint16(v2MacOff(DefaultHeadroom, true)))
	f.Add(seed, uint32(unix.TP_STATUS_USER), true)
	f.Add(seed, uint32(unix.TP_STATUS_USER|unix.TP_STATUS_VLAN_VALID|unix.TP_STATUS_VLAN_TPID_VALID), true)
	f.Add(seed, uint32(unix.TP_STATUS_USER|unix.TP_STATUS_CSUMNOTREADY), false)
	f.Add(seed, uint32(unix.TP_STATUS_USER|unix.TP_STATUS_COPY), true)
	f.Add(seed[:40], uint32(unix.TP_STATUS_USER), true)
	f.Fuzz(func(t *testing.T, slot []byte, status uint32, vnet bool) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string {
			return fmt.Sprintf("status %#x vnet %t slot %d bytes %.200q", status, vnet, len(slot), slot)
		})()
		// fd -1: the receive-queue read of a TP_STATUS_COPY slot fails.
		s := &Socket{fd: -1, vnet: vnet, blockSize: 2 * frameSize, ring: make([]byte, 2*frameSize),
			frames: &frameRing{frameSize: frameSize, perBlock: 2, slots: 2, big: [][]byte{make([]byte, bigHeadroom+vnetHdrLen+bigFrameLen)}}}
		copy(s.ring, slot)
		var fr dataplane.Frame
		if !s.frameAt(&fr, 0, status) {
			return
		}
		if fr.Off < 0 || fr.Len < 0 || fr.Off+fr.Len > len(fr.Buf) {
			t.Fatalf("frame Off %d Len %d outside its %d-byte buffer", fr.Off, fr.Len, len(fr.Buf))
		}
	})
}
