//go:build linux

package e2e

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// TestTUNPathMTU: the router between the director and rs1 has a 1400-byte
// link towards rs1. A client's DF datagram of 1400 bytes fits the
// director's 1500-byte link once tunnelled (1420 in IPIP) but not the
// router's, so the router sends the director a fragmentation-needed (MTU
// 1400) about its IPIP, GRE or GUE packet. The director learns the path MTU
// (ip_vs_in_icmp) and tells the client the MTU less the tunnel overhead
// (1380 for IPIP, 1376 for GRE without checksum, 1368 for GUE), which the
// client's kernel records for the VIP; a datagram that fits it then gets
// its echo. Before, the error was the kernel's (the ownership rules gave
// uvsd no ICMP error addressed to a director address about a tunnelled
// packet): the datagrams were black-holed and the client never learnt a
// lower MTU.
func TestTUNPathMTU(t *testing.T) {
	for _, c := range []struct {
		name    string
		rsOpts  string   // the real server's options in the rules
		rsExtra []string // uvs-rs tun up options
		mtu     int      // what the client learns
	}{
		{"ipip", "", nil, 1400 - 20},
		{"gre", "--tun-type gre --tun-nocsum", nil, 1400 - 24},
		{"gue", "--tun-type gue --tun-port 6080", []string{"--gue-port", "6080"}, 1400 - 32},
	} {
		t.Run(c.name, func(t *testing.T) { tunPathMTU(t, c.rsOpts, c.rsExtra, c.mtu) })
	}
}

func tunPathMTU(t *testing.T, rsOpts string, rsExtra []string, want int) {
	l := newRoutedLab(t)
	l.rtr.IP(t, "link", "set", "x2", "mtu", "1400")
	l.rs[0].IP(t, "link", "set", "r0", "mtu", "1400")
	uvsRSUp(t, l.rs[0], "10.0.3.100", rsExtra...)
	startUVSD(t, l.dir, `-A -u 10.0.3.100:5353 -s rr
-a -u 10.0.3.100:5353 -r 10.0.4.11 -i -w 1 `+rsOpts+`
`)
	var c *net.UDPConn
	var raw syscall.RawConn
	if err := l.cli.Do(func() error {
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				// DF on every datagram, whatever the path MTU: the test
				// reads the learnt MTU itself (IP_MTU).
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE)
			})
			if err != nil {
				return err
			}
			return serr
		}}
		conn, err := d.Dial("udp4", "10.0.3.100:5353")
		if err != nil {
			return err
		}
		c = conn.(*net.UDPConn)
		raw, err = c.SyscallConn()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pathMTU := func() int {
		mtu := 0
		_ = raw.Control(func(fd uintptr) { mtu, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU) })
		return mtu
	}
	big := strings.Repeat("b", 1400-28)
	wait.For(t, 10*time.Second, func() bool {
		_, _ = c.Write([]byte(big)) // EMSGSIZE once the MTU is known: fine
		return pathMTU() == want
	}, "the client's path MTU to the VIP to become %d (now %d)", want, wait.Lazy(func() any { return pathMTU() }))
	// A datagram that fits the path reaches rs1, whose echo (from its own
	// address: the echo socket is unbound) is read on a second socket.
	pc := listenUDP(t, l)
	fits := strings.Repeat("s", want-28)
	if _, err := pc.WriteTo([]byte(fits), &net.UDPAddr{IP: net.IPv4(10, 0, 3, 100), Port: 5353}); err != nil {
		t.Fatal(err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(udpTimeout))
	buf := make([]byte, 4096)
	n, _, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "rs1:"+fits {
		t.Fatalf("echo of a fitting datagram: %d bytes, %v", n, err)
	}
}

// uvsRSUp runs `uvs-rs tun up` for vip in ns with the extra options and
// undoes it when the test ends.
func uvsRSUp(t *testing.T, ns *netnstest.NS, vip string, extra ...string) {
	t.Helper()
	dir := t.TempDir()
	ns.Exec(t, append([]string{binary("uvs-rs"), "tun", "up", "--vip", vip, "--state-dir", dir}, extra...)...)
	t.Cleanup(func() {
		if out, err := ns.Run(binary("uvs-rs"), "tun", "down", "--vip", vip, "--state-dir", dir); err != nil {
			t.Errorf("uvs-rs tun down: %v: %s", err, out)
		}
	})
}

// listenUDP returns an unconnected IPv4 UDP socket of the lab's client.
func listenUDP(t *testing.T, l *routedLab) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	if err := l.cli.Do(func() error {
		var err error
		pc, err = (&net.ListenConfig{}).ListenPacket(context.Background(), "udp4", ":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}
