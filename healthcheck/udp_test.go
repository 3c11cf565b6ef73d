package healthcheck

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

// udpTestServer listens on addr ("127.0.0.1:0") and calls reply for each
// datagram; a non-nil return is sent back. It records what it received.
type udpTestServer struct {
	addr netip.AddrPort
	mu   sync.Mutex
	got  [][]byte
}

func (s *udpTestServer) received() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.got...)
}

func startUDPTestServer(t testing.TB, pc net.PacketConn, reply func([]byte) []byte) *udpTestServer {
	t.Helper()
	s := &udpTestServer{addr: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			b := bytes.Clone(buf[:n])
			s.mu.Lock()
			s.got = append(s.got, b)
			s.mu.Unlock()
			if r := reply(b); r != nil {
				_, _ = pc.WriteTo(r, from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return s
}

func udpTestListen(t testing.TB, addr string, reply func([]byte) []byte) *udpTestServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("cannot listen on %s: %v", addr, err)
	}
	return startUDPTestServer(t, pc, reply)
}

// udpClosedPort returns a loopback UDP port nothing listens on.
func udpClosedPort(t testing.TB, host string) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("cannot listen on %s: %v", host, err)
	}
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	return ap
}

func mustHexMask(t testing.TB, s string) HexMask {
	t.Helper()
	m, err := ParseHexMask(s, true)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func echo(b []byte) []byte { return b }

func TestUDPCheckLoopback(t *testing.T) {
	echo4 := udpTestListen(t, "127.0.0.1:0", echo)
	silent := udpTestListen(t, "127.0.0.1:0", func([]byte) []byte { return nil })
	fixed := udpTestListen(t, "127.0.0.1:0", func([]byte) []byte { return []byte{0xde, 0xad, 0xbe, 0xef, 0x01} })
	closed := udpClosedPort(t, "127.0.0.1")
	payload := []byte{0xde, 0xad, 0xbe, 0xef}

	long := 10 * time.Second        // returns as soon as the answer is in
	short := 300 * time.Millisecond // a success that needs silence waits this long
	tests := []struct {
		name    string
		check   UDPCheck
		addr    netip.AddrPort
		timeout time.Duration
		ok      bool
	}{
		{"echo", UDPCheck{}, echo4.addr, long, true},
		{"silence is success", UDPCheck{}, silent.addr, short, true},
		{"port unreachable", UDPCheck{}, closed, long, false},
		{"require_reply echo", UDPCheck{Payload: payload, RequireReply: true}, echo4.addr, long, true},
		{"require_reply silence", UDPCheck{RequireReply: true}, silent.addr, short, false},
		{"require_reply unreachable", UDPCheck{RequireReply: true}, closed, long, false},
		{"mask match", UDPCheck{RequireReply: true, Reply: mustHexMask(t, "deadbeef")}, fixed.addr, long, true},
		{"mask wildcard", UDPCheck{RequireReply: true, Reply: mustHexMask(t, "dXad xxef")}, fixed.addr, long, true},
		{"mask mismatch", UDPCheck{RequireReply: true, Reply: mustHexMask(t, "deadbeee")}, fixed.addr, long, false},
		{"mask longer than reply compares the reply's bytes", UDPCheck{RequireReply: true, Reply: mustHexMask(t, "deadbeef0102")}, fixed.addr, long, true},
		{"min length", UDPCheck{RequireReply: true, Reply: mustHexMask(t, "de"), MinReplyLength: 6}, fixed.addr, long, false},
		{"max length", UDPCheck{RequireReply: true, Reply: mustHexMask(t, "de"), MaxReplyLength: 4}, fixed.addr, long, false},
		{"lengths within", UDPCheck{RequireReply: true, Reply: mustHexMask(t, "de"), MinReplyLength: 5, MaxReplyLength: 5}, fixed.addr, long, true},
		{"no mask: lengths not checked", UDPCheck{RequireReply: true, MinReplyLength: 100}, fixed.addr, long, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.check.Probe(context.Background(), Target{Addr: tt.addr, Timeout: tt.timeout})
			if r.OK != tt.ok {
				t.Errorf("got %+v, want ok=%v", r, tt.ok)
			}
			if r.HasWeight {
				t.Errorf("UDP_CHECK asked for a weight: %+v", r)
			}
		})
	}
}

func TestUDPCheckPayload(t *testing.T) {
	s := udpTestListen(t, "127.0.0.1:0", echo)
	r := (&UDPCheck{Payload: []byte("hello")}).Probe(context.Background(), Target{Addr: s.addr, Timeout: 10 * time.Second})
	if !r.OK {
		t.Fatalf("probe: %+v", r)
	}
	r = (&UDPCheck{}).Probe(context.Background(), Target{Addr: s.addr, Timeout: 10 * time.Second})
	if !r.OK {
		t.Fatalf("probe: %+v", r)
	}
	got := s.received()
	if len(got) != 2 || string(got[0]) != "hello" || len(got[1]) != udpRandomPayload {
		t.Errorf("server received %q, want \"hello\" and %d random bytes", got, udpRandomPayload)
	}
	if want := "UDP connection to [" + s.addr.Addr().String() + "]:udp:" + strconv.Itoa(int(s.addr.Port())) + " success."; r.Msg != want {
		t.Errorf("msg %q, want %q", r.Msg, want)
	}
}

func TestUDPCheckIPv6(t *testing.T) {
	s := udpTestListen(t, "[::1]:0", echo)
	r := (&UDPCheck{Payload: []byte{1, 2}, RequireReply: true, Reply: mustHexMask(t, "01")}).Probe(context.Background(),
		Target{Addr: s.addr, Timeout: 10 * time.Second, BindTo: netip.MustParseAddr("::1")})
	if !r.OK {
		t.Errorf("echo over ::1: %+v", r)
	}
	closed := udpClosedPort(t, "::1")
	if r := (&UDPCheck{}).Probe(context.Background(), Target{Addr: closed, Timeout: 10 * time.Second}); r.OK {
		t.Errorf("closed ::1 port: %+v", r)
	}
}

func TestUDPCheckCancelled(t *testing.T) {
	s := udpTestListen(t, "127.0.0.1:0", func([]byte) []byte { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := (&UDPCheck{}).Probe(ctx, Target{Addr: s.addr, Timeout: time.Hour}); r.OK {
		t.Errorf("a cancelled probe succeeded: %+v", r)
	}
}

func TestParseHexMask(t *testing.T) {
	tests := []struct {
		in         string
		data, wild []byte
	}{
		{"deadbeef", []byte{0xde, 0xad, 0xbe, 0xef}, nil},
		{"DE AD\tbe", []byte{0xde, 0xad, 0xbe}, nil},
		{"1 02 3", []byte{0x01, 0x02, 0x03}, nil},
		{"ff", []byte{0xff}, nil},
		{"xX 1x", []byte{0x00, 0x10}, []byte{0xff, 0x0f}},
		{"  a", []byte{0x0a}, nil},
	}
	for _, tt := range tests {
		m, err := ParseHexMask(tt.in, true)
		if err != nil || !bytes.Equal(m.Data, tt.data) || !bytes.Equal(m.Wild, tt.wild) {
			t.Errorf("ParseHexMask(%q) = %x/%x, %v; want %x/%x", tt.in, m.Data, m.Wild, err, tt.data, tt.wild)
		}
	}
	for _, bad := range []string{"", "  ", "zz", "0g", "1\t2"} {
		if m, err := ParseHexMask(bad, true); err == nil {
			t.Errorf("ParseHexMask(%q) = %x, want an error", bad, m.Data)
		}
	}
	if _, err := ParseHexMask("xx", false); err == nil {
		t.Error("a payload accepted a wildcard")
	}
}

func TestHexMaskMatch(t *testing.T) {
	m := mustHexMask(t, "dx ad")
	for _, tt := range []struct {
		b  []byte
		ok bool
	}{
		{[]byte{0xd0, 0xad}, true},
		{[]byte{0xdf, 0xad, 0x99}, true},
		{[]byte{0xd5}, true},
		{[]byte{}, true},
		{[]byte{0xe0, 0xad}, false},
		{[]byte{0xd0, 0xae}, false},
	} {
		if got := m.Match(tt.b); got != tt.ok {
			t.Errorf("Match(%x) = %v, want %v", tt.b, got, tt.ok)
		}
	}
}

func FuzzParseHexMask(f *testing.F) {
	for _, s := range []string{"deadbeef", "1 02 3", "xX 1x", "", "zz", "1\t2", "ff"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, wildcards bool) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("wildcards %t, %d bytes %.200q", wildcards, len(s), s) })()
		m, err := ParseHexMask(s, wildcards)
		if err != nil {
			return
		}
		if len(m.Data) == 0 || len(m.Data) > (len(s)+1)/2 {
			t.Fatalf("%q: %d bytes", s, len(m.Data))
		}
		if m.Wild != nil && (!wildcards || len(m.Wild) != len(m.Data)) {
			t.Fatalf("%q: wild %x data %x", s, m.Wild, m.Data)
		}
		for i := range m.Data {
			if m.Wild != nil && m.Data[i]&m.Wild[i] != 0 {
				t.Fatalf("%q: wildcard bits set in data", s)
			}
		}
		// The data matches itself, whatever the wildcards.
		if !m.Match(m.Data) {
			t.Fatalf("%q: data does not match itself", s)
		}
	})
}
