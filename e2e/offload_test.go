package e2e

import (
	"bytes"
	encbin "encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// The offload suite moves 1 GB through each forwarding method with the
// client's and the real servers' offloads left on (TSO, GSO, GRO, checksum
// offload: veth's defaults), so uvsd sees 64 KB GSO super-frames and
// partial checksums both ways, and checks every byte.
//
// The data is a deterministic stream (streamPattern) generated on the fly
// on both ends: the sender writes it, the receiver compares every byte
// with its own copy of the stream, so 1 GB is never held in memory and a
// corruption is reported at its offset.

const (
	transferSize    = 1 << 30
	transferTimeout = 120 * time.Second
	streamPort      = 9000
)

// streamPattern generates the test stream: little-endian words of a PCG
// seeded with (7, 9).
type streamPattern struct {
	r   *rand.PCG
	buf []byte
	off int
}

func newStreamPattern() *streamPattern {
	return &streamPattern{r: rand.NewPCG(7, 9), buf: make([]byte, 64<<10), off: 64 << 10}
}

// next returns the next n bytes of the stream (n <= 64 KB), valid until
// the next call.
func (s *streamPattern) next(n int) []byte {
	if s.off == len(s.buf) {
		for i := 0; i < len(s.buf); i += 8 {
			encbin.LittleEndian.PutUint64(s.buf[i:], s.r.Uint64())
		}
		s.off = 0
	}
	n = min(n, len(s.buf)-s.off)
	b := s.buf[s.off : s.off+n]
	s.off += n
	return b
}

// sendStream writes size bytes of the stream to w.
func sendStream(w io.Writer, size int64) error {
	p := newStreamPattern()
	for size > 0 {
		b := p.next(int(min(size, 64<<10)))
		if _, err := w.Write(b); err != nil {
			return err
		}
		size -= int64(len(b))
	}
	return nil
}

// checkStream reads size bytes from r and compares them with the stream.
func checkStream(r io.Reader, size int64) error {
	p := newStreamPattern()
	buf := make([]byte, 256<<10)
	var got int64
	for got < size {
		n, err := r.Read(buf[:min(int64(len(buf)), size-got)])
		for b := buf[:n]; len(b) > 0; {
			want := p.next(len(b))
			if !bytes.Equal(b[:len(want)], want) {
				i := 0
				for b[i] == want[i] {
					i++
				}
				return fmt.Errorf("byte %d differs from the stream", got+int64(i))
			}
			got += int64(len(want))
			b = b[len(want):]
		}
		if err != nil {
			if errors.Is(err, io.EOF) && got < size {
				return fmt.Errorf("stream ended after %d of %d bytes", got, size)
			}
			if got < size {
				return fmt.Errorf("after %d of %d bytes: %w", got, size, err)
			}
		}
	}
	return nil
}

// startStreamServer serves the stream protocol on :streamPort in ns (IPv4
// and IPv6): a client sends 'D' or 'U' and an 8-byte size; for 'D' the
// server sends that much of the stream, for 'U' it checks that much and
// answers "ok" or the error.
func startStreamServer(t *testing.T, ns *netnstest.NS) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", streamPort))
		return err
	}); err != nil {
		t.Fatalf("stream server in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveStream(c)
		}
	}()
}

func serveStream(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(transferTimeout))
	var req [9]byte
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return
	}
	size := int64(encbin.BigEndian.Uint64(req[1:]))
	switch req[0] {
	case 'D':
		_ = sendStream(c, size)
	case 'U':
		msg := "ok"
		if err := checkStream(c, size); err != nil {
			msg = err.Error()
		}
		_, _ = io.WriteString(c, msg)
	}
}

// transfer runs one stream exchange from ns to addr: download (the real
// server sends) or upload (the client sends). It fails the test on any
// corruption or after transferTimeout, and logs the throughput seen.
func transfer(t *testing.T, ns *netnstest.NS, addr string, upload bool, size int64) {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
		return err
	}); err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(transferTimeout))
	req := [9]byte{'D'}
	dir := "download"
	if upload {
		req[0], dir = 'U', "upload"
	}
	encbin.BigEndian.PutUint64(req[1:], uint64(size))
	start := time.Now()
	if _, err := c.Write(req[:]); err != nil {
		t.Fatalf("%s request: %v", dir, err)
	}
	if upload {
		if err := sendStream(c, size); err != nil {
			t.Fatalf("%s %s: sending after %v: %v", dir, addr, time.Since(start), err)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		reply, err := io.ReadAll(c)
		if err != nil || string(reply) != "ok" {
			t.Fatalf("%s %s: the real server says %q (%v)", dir, addr, reply, err)
		}
	} else if err := checkStream(c, size); err != nil {
		t.Fatalf("%s %s after %v: %v", dir, addr, time.Since(start), err)
	}
	d := time.Since(start)
	t.Logf("%s of %d MB via %s intact in %v: %.2f Gbit/s", dir, size>>20, addr, d.Round(time.Millisecond),
		float64(size)*8/d.Seconds()/1e9)
}

// TestStreamPattern checks the checker: it must notice a flipped byte and
// a short stream.
func TestStreamPattern(t *testing.T) {
	var b bytes.Buffer
	if err := sendStream(&b, 300000); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	if err := checkStream(bytes.NewReader(data), 300000); err != nil {
		t.Fatalf("intact stream: %v", err)
	}
	data[123457] ^= 1
	if err := checkStream(bytes.NewReader(data), 300000); err == nil || !strings.Contains(err.Error(), "byte 123457") {
		t.Fatalf("flipped byte: %v", err)
	}
	data[123457] ^= 1
	if err := checkStream(bytes.NewReader(data[:200000]), 300000); err == nil {
		t.Fatal("short stream accepted")
	}
}

// TestOffloadNAT: 1 GB each way through NAT: the download's data comes
// from the real server as super-frames (reply path), the upload's from the
// client (request path); then IPv6.
func TestOffloadNAT(t *testing.T) {
	l := newNATLab(t)
	for _, rs := range l.rs {
		startStreamServer(t, rs)
	}
	startUVSD(t, l.dir, fmt.Sprintf(`-A -t 10.0.1.100:%[1]d -s rr
-a -t 10.0.1.100:%[1]d -r 10.0.2.11:%[1]d -m
-a -t 10.0.1.100:%[1]d -r 10.0.2.12:%[1]d -m
-A -t [fd00:1::100]:%[1]d -s rr
-a -t [fd00:1::100]:%[1]d -r [fd00:2::11]:%[1]d -m
`, streamPort))
	transfer(t, l.cli, fmt.Sprintf("10.0.1.100:%d", streamPort), false, transferSize)
	transfer(t, l.cli, fmt.Sprintf("10.0.1.100:%d", streamPort), true, transferSize)
	transfer(t, l.cli, fmt.Sprintf("[fd00:1::100]:%d", streamPort), false, transferSize/4)
}

// TestOffloadFullNAT: 1 GB each way through FULLNAT (both addresses
// rewritten once per super-frame).
func TestOffloadFullNAT(t *testing.T) {
	cli, dir, rs := netnstest.New(t, "cli"), netnstest.New(t, "dir"), netnstest.New(t, "rs")
	netnstest.Veth(t, cli, "c0", dir, "d0")
	netnstest.Veth(t, dir, "d1", rs, "r0")
	cli.AddrAdd(t, "c0", "10.0.1.2/24")
	cli.RouteAdd(t, "default", "via", "10.0.1.1")
	dir.AddrAdd(t, "d0", "10.0.1.1/24")
	dir.AddrAdd(t, "d1", "10.0.11.1/24")
	rs.AddrAdd(t, "r0", "10.0.11.11/24") // no route back to the client
	startStreamServer(t, rs)
	startUVSD(t, dir, fmt.Sprintf(`-A -t 10.0.1.100:%[1]d -s rr
-a -t 10.0.1.100:%[1]d -r 10.0.11.11:%[1]d -b
`, streamPort))
	transfer(t, cli, fmt.Sprintf("10.0.1.100:%d", streamPort), false, transferSize)
	transfer(t, cli, fmt.Sprintf("10.0.1.100:%d", streamPort), true, transferSize)
}

// TestOffloadDR: 1 GB uploaded through DR: the client's super-frames pass
// the director whole (MAC rewrite), the replies go straight back.
func TestOffloadDR(t *testing.T) {
	l := newLANLab(t, false)
	for _, rs := range l.rs {
		drRealServer(t, rs, "10.0.5.100")
		startStreamServer(t, rs)
	}
	startUVSD(t, l.dir, fmt.Sprintf(`-A -t 10.0.5.100:%[1]d -s rr
-a -t 10.0.5.100:%[1]d -r 10.0.5.11 -g
-a -t 10.0.5.100:%[1]d -r 10.0.5.12 -g
`, streamPort))
	transfer(t, l.cli, fmt.Sprintf("10.0.5.100:%d", streamPort), true, transferSize)
}

// TestOffloadTUN: 1 GB uploaded through TUN: IPIP cannot carry a
// super-frame as one, so uvsd cuts each into segments in software and
// encapsulates them (the path MTU leaves room for the outer header after
// ICMP fragmentation-needed lowers the client's MSS).
func TestOffloadTUN(t *testing.T) {
	l := newRoutedLab(t)
	for _, rs := range l.rs {
		uvsRS(t, rs, "tun", "10.0.3.100")
		startStreamServer(t, rs)
	}
	startUVSD(t, l.dir, fmt.Sprintf(`-A -t 10.0.3.100:%[1]d -s rr
-a -t 10.0.3.100:%[1]d -r 10.0.4.11 -i
-a -t 10.0.3.100:%[1]d -r 10.0.6.12 -i
`, streamPort))
	transfer(t, l.cli, fmt.Sprintf("10.0.3.100:%d", streamPort), true, transferSize)
}

// TestOffloadChecksumsVerified makes the kernel prove uvsd's offload
// metadata: the director's interfaces have checksum offload (and so TSO)
// off, so its kernel segments every super-frame uvsd sends and completes
// every partial checksum in software, from uvsd's csum_start/csum_offset
// and the pseudo-header sum uvsd left in the field; the client and the
// real servers have receive checksum offload off, so their stacks verify
// every segment instead of trusting veth. A wrong sum stalls the transfer.
func TestOffloadChecksumsVerified(t *testing.T) {
	l := newNATLab(t)
	l.dir.Exec(t, "ethtool", "-K", "d0", "tx", "off")
	l.dir.Exec(t, "ethtool", "-K", "d1", "tx", "off")
	l.cli.Exec(t, "ethtool", "-K", "c0", "rx", "off")
	for _, rs := range l.rs {
		rs.Exec(t, "ethtool", "-K", "r0", "rx", "off")
		startStreamServer(t, rs)
	}
	startUVSD(t, l.dir, fmt.Sprintf(`-A -t 10.0.1.100:%[1]d -s rr
-a -t 10.0.1.100:%[1]d -r 10.0.2.11:%[1]d -m
`, streamPort))
	transfer(t, l.cli, fmt.Sprintf("10.0.1.100:%d", streamPort), false, transferSize/4)
	transfer(t, l.cli, fmt.Sprintf("10.0.1.100:%d", streamPort), true, transferSize/4)
	for _, ns := range append([]*netnstest.NS{l.cli}, l.rs...) {
		if n := nstatCounter(t, ns, "TcpInCsumErrors"); n != 0 {
			t.Errorf("%s counted %d TCP checksum errors", ns.Name, n)
		}
	}
}

// nstatCounter returns one of the namespace's SNMP counters (nstat -a:
// absolute, -s: no history file, -z: zeros too).
func nstatCounter(t *testing.T, ns *netnstest.NS, name string) uint64 {
	t.Helper()
	out := ns.Exec(t, "nstat", "-asz", name)
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("nstat in %s: %s %q: %v", ns.Name, name, f[1], err)
			}
			return v
		}
	}
	t.Fatalf("nstat in %s: no %s in %q", ns.Name, name, out)
	return 0
}
