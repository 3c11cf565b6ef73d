//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestTUNGRE: --tun-type gre, with and without --tun-csum, through uvs-rs
// on real servers whose kernel has no GRE module: the client gets answers
// from both, and the tunnelled download's ACKs keep flowing.
func TestTUNGRE(t *testing.T) {
	netnstest.RequireTool(t, "nft")
	l := newRoutedLab(t)
	for _, rs := range l.rs {
		uvsRS(t, rs, "tun", "10.0.3.100")
		// The real servers take GRE only: an IPIP packet (what the
		// director sent before it knew GRE) is dropped before the raw
		// socket sees it; GRE packets are counted.
		rs.Exec(t, "nft", "add table inet tun; add chain inet tun in { type filter hook input priority 0; }; "+
			"add rule inet tun in ip protocol 4 drop; add rule inet tun in ip protocol gre counter")
	}
	startUVSD(t, l.dir, `-A -t 10.0.3.100:80 -s rr
-a -t 10.0.3.100:80 -r 10.0.4.11 -i -w 1 --tun-type gre --tun-csum
-a -t 10.0.3.100:80 -r 10.0.6.12 -i -w 1 --tun-type gre --tun-nocsum
`)
	seen := map[string]int{}
	for range 4 {
		seen[curl(t, l.cli, "http://10.0.3.100/")]++
	}
	if seen["rs1"] != 2 || seen["rs2"] != 2 {
		t.Fatalf("GRE rr answers %v", seen)
	}
	if got := curlSum(t, l.cli, "http://10.0.3.100/big"); got != bigSum {
		t.Fatalf("GRE download sha256 %s, want %s", got, bigSum)
	}
	for i, rs := range l.rs {
		if out := rs.Exec(t, "nft", "list chain inet tun in"); !strings.Contains(out, "ip protocol gre counter packets") ||
			strings.Contains(out, "gre counter packets 0 ") {
			t.Errorf("rs%d saw no GRE:\n%s", i+1, out)
		}
	}
}

// addIPv6 gives the routed lab IPv6: fd00:N::/64 on each subnet of
// routedLab, the router forwarding, default routes through it.
func (l *routedLab) addIPv6(t *testing.T) {
	t.Helper()
	l.rtr.Sysctl(t, "net.ipv6.conf.all.forwarding", "1")
	l.rtr.AddrAdd(t, "x0", "fd00:1::254/64")
	l.rtr.AddrAdd(t, "x1", "fd00:3::254/64")
	l.cli.AddrAdd(t, "c0", "fd00:1::2/64")
	l.cli.RouteAdd(t, "::/0", "via", "fd00:1::254")
	l.dir.AddrAdd(t, "d0", "fd00:3::1/64")
	l.dir.RouteAdd(t, "::/0", "via", "fd00:3::254")
	for i, sub := range []int{4, 6} {
		rs := l.rs[i]
		l.rtr.AddrAdd(t, fmt.Sprintf("x%d", i+2), fmt.Sprintf("fd00:%d::254/64", sub))
		rs.AddrAdd(t, "r0", fmt.Sprintf("fd00:%d::1%d/64", sub, i+1))
		rs.RouteAdd(t, "::/0", "via", fmt.Sprintf("fd00:%d::254", sub))
	}
}

// TestTUNIPv6: IPv6 real servers get their packets under an outer IPv6
// header — IP6IP6 for an IPv6 service, IPv4-in-IPv6 for an IPv4 one
// (tunnelling allows a real server of the other family), GRE over IPv6
// too — and uvs-rs decapsulates them on hosts without the ip6_tunnel
// and sit modules: the client gets answers over both families.
func TestTUNIPv6(t *testing.T) {
	l := newRoutedLab(t)
	l.addIPv6(t)
	for _, rs := range l.rs {
		dir := t.TempDir()
		rs.Exec(t, binary("uvs-rs"), "tun", "up", "--vip", "fd00:3::100", "--vip", "10.0.3.100", "--state-dir", dir)
		t.Cleanup(func() {
			if out, err := rs.Run(binary("uvs-rs"), "tun", "down", "--state-dir", dir); err != nil {
				t.Errorf("uvs-rs tun down: %v: %s", err, out)
			}
		})
	}
	startUVSD(t, l.dir, `-A -t [fd00:3::100]:80 -s rr
-a -t [fd00:3::100]:80 -r [fd00:4::11]:80 -i -w 1
-a -t [fd00:3::100]:80 -r [fd00:6::12]:80 -i -w 1 --tun-type gre
-A -t 10.0.3.100:80 -s rr
-a -t 10.0.3.100:80 -r [fd00:4::11]:80 -i -w 1
-a -t 10.0.3.100:80 -r [fd00:6::12]:80 -i -w 1 --tun-type gre --tun-csum
`)
	for _, url := range []string{"http://[fd00:3::100]/", "http://10.0.3.100/"} {
		seen := map[string]int{}
		for range 4 {
			seen[curl(t, l.cli, url)]++
		}
		if seen["rs1"] != 2 || seen["rs2"] != 2 {
			t.Fatalf("%s: answers %v", url, seen)
		}
	}
	if got := curlSum(t, l.cli, "http://[fd00:3::100]/big"); got != bigSum {
		t.Fatalf("IP6IP6 download sha256 %s, want %s", got, bigSum)
	}
}

// TestTUNNonDFFragmented: a client's 1500-byte datagram without DF no
// longer fits the 1500-byte link once tunnelled; the director sends the
// outer packet in fragments (as ip_vs_tunnel_xmit with DF clear and
// ip_local_out do), the real server's kernel reassembles them before its
// raw socket hands them to uvs-rs, and the client gets the echo. Before,
// the datagram was lost.
func TestTUNNonDFFragmented(t *testing.T) {
	l := newRoutedLab(t)
	uvsRS(t, l.rs[0], "tun", "10.0.3.100")
	startUVSD(t, l.dir, `-A -u 10.0.3.100:5353 -s rr
-a -u 10.0.3.100:5353 -r 10.0.4.11 -i -w 1
`)
	// Unconnected: the echo server's unbound socket answers from the real
	// server's own address, not the VIP.
	var c net.PacketConn
	if err := l.cli.Do(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
			})
			if err != nil {
				return err
			}
			return serr
		}}
		var err error
		c, err = lc.ListenPacket(context.Background(), "udp4", ":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := strings.Repeat("f", 1500-28)
	if _, err := c.WriteTo([]byte(payload), &net.UDPAddr{IP: net.IPv4(10, 0, 3, 100), Port: 5353}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(udpTimeout))
	buf := make([]byte, 4096)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no echo of the 1500-byte datagram: %v", err)
	}
	if got := string(buf[:n]); got != "rs1:"+payload {
		t.Fatalf("echo of %d bytes, want %d", len(got), len(payload)+4)
	}
}
