package afxdp

import (
	"encoding/binary"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
)

// BenchmarkForwardBurst is the director's side of uvs-bench's CPU figure
// on one veth: b sends bursts of 64 owned frames (AF_PACKET, qdisc
// bypassed, as the bench's generator) at 150 k frames/s, and a reader on
// its own thread reads them and, in "rx+tx", writes each one back out of
// the veth (to a MAC nobody has: b's kernel drops it on arrival, as the
// bench's real servers drop at ingress). It reports the reader thread's
// CPU time per frame (RUSAGE_THREAD: user and system, including the
// softirq work its syscalls run: for transmission, the skb the kernel
// builds, veth's xmit and the peer's receive), and how often it slept in
// poll and kicked transmission per frame. "rx" alone shows what reading
// costs, so "rx+tx" minus "rx" is the copy-mode transmit path. Pin it
// with taskset to one CPU for steadier figures.
func BenchmarkForwardBurst(b *testing.B) {
	const (
		burst = 64
		rate  = 150_000
	)
	p := newPair(b)
	_, x := backend(b, p.a, p.ownedSpecs, Config{PollTimeout: 100 * time.Millisecond}, ModeAuto, Bind{p.va.Index, 0})
	ping := udpFrame(b, p.vb.HardwareAddr, p.va.HardwareAddr, addrB, ownedAddr, 9400, 9000, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	nobody := net.HardwareAddr{0x02, 0, 0, 0, 0xee, 0xee}
	out := udpFrame(b, p.va.HardwareAddr, nobody, ownedAddr, addrB, 9000, 9400, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	var fd int
	if err := p.b.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		return unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = unix.Close(fd) })
	to := &unix.SockaddrLinklayer{Ifindex: p.vb.Index, Protocol: beToNative16(unix.ETH_P_IP)}

	for _, mode := range []string{"rx", "rx+tx"} {
		b.Run(mode, func(b *testing.B) {
			st0, err := x.Stats()
			if err != nil {
				b.Fatal(err)
			}
			sent := make(chan struct{})
			done := make(chan [2]int64, 1)
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				frames := make([]dataplane.Frame, dataplane.BatchSize)
				outs := make([]dataplane.Frame, dataplane.BatchSize)
				for i := range outs {
					outs[i] = dataplane.Frame{Buf: out, Len: len(out), Ifindex: p.va.Index}
				}
				start, got := threadCPU(), 0
				for {
					n, err := x.ReadBatch(frames)
					if err != nil {
						break
					}
					if n == 0 {
						select {
						case <-sent: // a poll timeout after the last burst
							done <- [2]int64{threadCPU() - start, int64(got)}
							return
						default:
							continue
						}
					}
					if mode == "rx+tx" {
						_, _ = x.WriteBatch(outs[:n])
					}
					got += n
				}
				done <- [2]int64{threadCPU() - start, int64(got)}
			}()
			b.ResetTimer()
			next, nsent := time.Now(), 0
			for ; nsent < b.N; nsent += burst {
				for range burst {
					_ = unix.Sendto(fd, ping, 0, to)
				}
				next = next.Add(burst * time.Second / rate)
				time.Sleep(time.Until(next))
			}
			close(sent)
			r := <-done
			b.StopTimer()
			if r[1] == 0 {
				b.Fatal("no frame read")
			}
			st, err := x.Stats()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(r[0])/float64(r[1]), "reader-cpu-ns/frame")
			b.ReportMetric(float64(st.RxPolls-st0.RxPolls)/float64(r[1]), "polls/frame")
			b.ReportMetric(float64(st.TxKicks-st0.TxKicks)/float64(r[1]), "kicks/frame")
			b.ReportMetric(float64(r[1])/float64(nsent), "read/sent")
		})
	}
}

// threadCPU returns the calling thread's user plus system time in ns.
func threadCPU() int64 {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// beToNative16 returns v in network byte order, as sockaddr_ll wants
// its protocol.
func beToNative16(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
