package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr (x/sys/unix has no sendmmsg wrapper).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// Generator is an opened generator socket with its preallocated batch.
type Generator struct {
	fd    int
	b     *FrameBuilder
	batch int
	bufs  []byte
	iovs  []unix.Iovec
	hdrs  []mmsghdr
	next  int // next flow index
}

// OpenGenerator opens an AF_PACKET SOCK_RAW socket bound to iface (inside
// netNS when set) with PACKET_QDISC_BYPASS, and allocates the batch.
func OpenGenerator(netNS, iface string, spec FlowSpec, batch int) (*Generator, error) {
	b, err := NewFrameBuilder(spec)
	if err != nil {
		return nil, err
	}
	if batch <= 0 {
		batch = 64
	}
	g := &Generator{fd: -1, b: b, batch: batch}
	open := func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return fmt.Errorf("generator: interface %s: %w", iface, err)
		}
		// Protocol 0: the socket receives nothing.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("generator: AF_PACKET socket: %w", err)
		}
		g.fd = fd
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("generator: PACKET_QDISC_BYPASS: %w", err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("generator: bind %s: %w", iface, err)
		}
		return nil
	}
	if netNS != "" {
		err = inNetNS(netNS, open)
	} else {
		err = open()
	}
	if err != nil {
		g.Close()
		return nil, err
	}
	n := b.Len()
	g.bufs = make([]byte, batch*n)
	g.iovs = make([]unix.Iovec, batch)
	g.hdrs = make([]mmsghdr, batch)
	for i := range batch {
		g.iovs[i].Base = &g.bufs[i*n]
		g.iovs[i].SetLen(n)
		g.hdrs[i].hdr.Iov = &g.iovs[i]
		g.hdrs[i].hdr.SetIovlen(1)
	}
	return g, nil
}

// Close closes the socket.
func (g *Generator) Close() {
	if g.fd >= 0 {
		_ = unix.Close(g.fd)
		g.fd = -1
	}
}

// fill writes the next n flows' frames into the batch. It does not
// allocate.
func (g *Generator) fill(n int) {
	l := g.b.Len()
	for i := range n {
		g.b.Fill(g.bufs[i*l:(i+1)*l], g.next)
		g.next++
		if g.next == g.b.spec.Flows {
			g.next = 0
		}
	}
}

// send transmits the first n frames of the batch, skipping frames the
// kernel refuses, and adds to res.
func (g *Generator) send(n int, res *GenResult) error {
	off := 0
	for off < n {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(g.fd),
			uintptr(unsafe.Pointer(&g.hdrs[off])), uintptr(n-off), 0, 0, 0)
		switch {
		case e == 0:
			res.Sent += uint64(r)
			off += int(r)
		case e == unix.EINTR || e == unix.EAGAIN:
		case e == unix.ENOBUFS:
			res.NoBufs++
			off++
		default:
			res.Errors++
			off++
			if res.FirstError == "" {
				res.FirstError = e.Error()
			}
			if e == unix.ENETDOWN || e == unix.ENXIO || e == unix.EBADF {
				return fmt.Errorf("generator: sendmmsg: %w", e)
			}
		}
	}
	return nil
}

// Run sends until ctx is done, d has passed or count frames were offered
// (sent or refused). rate 0 sends as fast as possible.
func (g *Generator) Run(ctx context.Context, rate float64, d time.Duration, count uint64, cpu int) (GenResult, error) {
	if d <= 0 && count == 0 {
		return GenResult{}, errors.New("generator: neither a duration nor a count")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return GenResult{}, fmt.Errorf("generator: pin to CPU %d: %w", cpu, err)
		}
	}
	var res GenResult
	p := Pacer{Rate: rate, Batch: g.batch}
	start := time.Now()
	var offered uint64
	var err error
	for i := 0; ; i++ {
		if i&63 == 0 && ctx.Err() != nil {
			break
		}
		el := time.Since(start)
		if d > 0 && el >= d {
			break
		}
		n, wait := p.Next(offered, el)
		if n == 0 {
			if d > 0 && el+wait > d {
				wait = d - el
			}
			time.Sleep(wait)
			continue
		}
		if count > 0 && offered+uint64(n) > count {
			n = int(count - offered)
		}
		if n == 0 {
			break
		}
		g.fill(n)
		if err = g.send(n, &res); err != nil {
			break
		}
		offered += uint64(n)
		if count > 0 && offered >= count {
			break
		}
	}
	res.Seconds = time.Since(start).Seconds()
	return res, err
}

// Generate opens a generator, runs it once and closes it.
func Generate(ctx context.Context, cfg GenConfig) (GenResult, error) {
	g, err := OpenGenerator(cfg.NetNS, cfg.Iface, cfg.Flow, cfg.Batch)
	if err != nil {
		return GenResult{}, err
	}
	defer g.Close()
	return g.Run(ctx, cfg.Rate, cfg.Duration, cfg.Count, cfg.CPU)
}
