//go:build linux

package e2e

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

const mtuRules = `-A -u 10.0.1.100:7000 -s rr
-a -u 10.0.1.100:7000 -r 10.0.2.11:7000 -m
`

// TestMTU: the director between a client on a jumbo link and real
// servers behind a 1500-byte one acts as a router does (issue #16). A
// 3028-byte UDP datagram without DF is fragmented by uvsd and reaches the
// real server whole (its kernel reassembles it); one with DF is answered
// with ICMP fragmentation needed, MTU 1500, which the client's kernel
// learns as the path MTU (a socket with IP_PMTUDISC_DO then gets
// EMSGSIZE). Before, the first went out as one 3028-byte frame on a
// 1500-byte link (tx-errors, nothing delivered) and the second too.
func TestMTU(t *testing.T) {
	l := newNATLab(t)
	// The client's link is a jumbo one. AF_XDP takes frames up to a UMEM
	// page (and native XDP on veth an MTU of about 3500): 3500 there.
	jumbo := "9000"
	if os.Getenv("UVS_E2E_IO") == "afxdp" {
		jumbo = "3500"
	}
	l.cli.IP(t, "link", "set", "c0", "mtu", jumbo)
	l.dir.IP(t, "link", "set", "d0", "mtu", jumbo)
	sizes := fragSizeServer(t, l.rs[0], "udp", ":7000")
	startUVSD(t, l.dir, mtuRules)

	const payload = 3000 // 3028 bytes of IPv4

	t.Run("non-DF fragmented and delivered", func(t *testing.T) {
		c := dialUDP(t, l.cli, "10.0.1.100:7000")
		defer c.Close()
		setPMTUDisc(t, c.(*net.UDPConn), unix.IP_PMTUDISC_DONT)
		buf := make([]byte, payload)
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("write: %v", err)
		}
		select {
		case n := <-sizes:
			if n != payload {
				t.Fatalf("real server received %d bytes, want %d", n, payload)
			}
		case <-time.After(udpTimeout):
			t.Fatal("the real server received nothing")
		}
		_ = c.SetReadDeadline(time.Now().Add(udpTimeout))
		reply := make([]byte, 64)
		n, err := c.Read(reply)
		if err != nil || string(reply[:n]) != strconv.Itoa(payload) {
			t.Fatalf("reply %q, %v", reply[:n], err)
		}
	})

	t.Run("DF gets fragmentation needed", func(t *testing.T) {
		c := dialUDP(t, l.cli, "10.0.1.100:7000")
		defer c.Close()
		setPMTUDisc(t, c.(*net.UDPConn), unix.IP_PMTUDISC_DO)
		buf := make([]byte, payload)
		// Each write that leaves is answered with an ICMP error; the
		// client's kernel then lowers the path MTU to the VIP to 1500
		// and refuses the datagram itself.
		var lastErr error
		wait.For(t, 10*time.Second, func() bool {
			_, lastErr = c.Write(buf)
			return errors.Is(lastErr, unix.EMSGSIZE) && pathMTU(t, c) == 1500
		}, "the client to learn a path MTU of 1500 (last write: %v, IP_MTU %d)",
			wait.Lazy(func() any { return lastErr }), wait.Lazy(func() any { return pathMTU(t, c) }))
		select {
		case n := <-sizes:
			t.Fatalf("the real server received a %d-byte datagram sent with DF", n)
		default:
		}
	})
}

const mtuReplyRules = `-A -u 10.0.1.100:7000 -s rr
-a -u 10.0.1.100:7000 -r 10.0.2.11:7000 -m
-A -u 10.0.1.100:7001 -s rr
-a -u 10.0.1.100:7001 -r 10.0.2.11:7001 -m
`

// TestMTUReply: the other direction, real servers on a jumbo LAN and the
// client behind a 1500-byte link. A 3028-byte reply without DF is
// fragmented by uvsd after the NAT rewrite and reaches the client whole;
// one with DF is answered with ICMP fragmentation needed, MTU 1500, to
// the real server (ip_forward's check, before IPVS rewrites the reply),
// whose kernel learns the path MTU towards the client. Before, the reply
// direction had no MTU check at all.
func TestMTUReply(t *testing.T) {
	l := newNATLab(t)
	jumbo := "9000"
	if os.Getenv("UVS_E2E_IO") == "afxdp" {
		jumbo = "3500"
	}
	l.dir.IP(t, "link", "set", "d1", "mtu", jumbo)
	for _, dev := range []string{"s0", "s1", "s2", "br0"} {
		l.sw.IP(t, "link", "set", dev, "mtu", jumbo)
	}
	for _, rs := range l.rs {
		rs.IP(t, "link", "set", "r0", "mtu", jumbo)
	}
	const payload = 3000
	bigReplyServer(t, l.rs[0], ":7000", payload, unix.IP_PMTUDISC_DONT)
	bigReplyServer(t, l.rs[0], ":7001", payload, unix.IP_PMTUDISC_DO)
	startUVSD(t, l.dir, mtuReplyRules)

	t.Run("non-DF reply fragmented and delivered", func(t *testing.T) {
		c := dialUDP(t, l.cli, "10.0.1.100:7000")
		defer c.Close()
		if _, err := c.Write([]byte("big")); err != nil {
			t.Fatalf("write: %v", err)
		}
		_ = c.SetReadDeadline(time.Now().Add(udpTimeout))
		buf := make([]byte, 65536)
		n, err := c.Read(buf)
		if err != nil || n != payload {
			t.Fatalf("reply of %d bytes, %v; want %d", n, err, payload)
		}
	})

	t.Run("DF reply gets fragmentation needed", func(t *testing.T) {
		c := dialUDP(t, l.cli, "10.0.1.100:7001")
		defer c.Close()
		var route string
		wait.For(t, 10*time.Second, func() bool {
			_, _ = c.Write([]byte("big"))
			route, _ = l.rs[0].Run("ip", "-4", "route", "get", "10.0.1.2", "from", "10.0.2.11")
			return strings.Contains(route, "mtu 1500")
		}, "the real server to learn a path MTU of 1500 towards the client (route: %s)", wait.Lazy(func() any { return route }))
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := c.Read(make([]byte, 65536)); err == nil {
			t.Fatalf("the client received a %d-byte reply sent with DF", n)
		}
	})
}

// bigReplyServer answers every datagram to addr in ns with size bytes,
// sent with IP_MTU_DISCOVER pmtud.
func bigReplyServer(t *testing.T, ns *netnstest.NS, addr string, size, pmtud int) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp4", addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	setPMTUDisc(t, pc.(*net.UDPConn), pmtud)
	go func() {
		buf := make([]byte, 65536)
		reply := make([]byte, size)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(reply, from)
		}
	}()
}

// setPMTUDisc sets IP_MTU_DISCOVER on a UDP socket.
func setPMTUDisc(t *testing.T, c syscall.Conn, v int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, v) }); err != nil || serr != nil {
		t.Fatalf("IP_MTU_DISCOVER %d: %v %v", v, err, serr)
	}
}

// pathMTU returns the connected socket's path MTU (IP_MTU), -1 on error.
func pathMTU(t *testing.T, c net.Conn) int {
	t.Helper()
	rc, err := c.(*net.UDPConn).SyscallConn()
	if err != nil {
		return -1
	}
	mtu := -1
	_ = rc.Control(func(fd uintptr) {
		if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU); err == nil {
			mtu = v
		}
	})
	return mtu
}
