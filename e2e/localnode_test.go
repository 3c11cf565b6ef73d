package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestLocalNode is seed 004's two-node case from the master's side: the
// director is also a real server. Its VIP is on lo as on every LVS-DR
// real server (realserver.sh: arp_ignore=1, arp_announce=2) and on d0 as
// keepalived puts it on the master; rr over its own address and a second
// real server, DR. Requests scheduled to the director's own address go to
// its own stack through the local-delivery device (LOCALNODE) and are
// answered by its web server; the others go to rs1 on the wire. With
// conf/all/rp_filter strict in the director's namespace, uvsd lowers it
// for the device while every interface keeps strict filtering, and puts
// everything back on exit.
//
//	[cli] c0 10.0.5.2 ── br0 [sw] ── d0 10.0.5.1 [dir] (VIP on lo and d0, web server "dir")
//	                             └── r0 10.0.5.11 [rs1] (VIP on lo, web server "rs1")
func TestLocalNode(t *testing.T) {
	cli, dir, rs1, sw := netnstest.New(t, "cli"), netnstest.New(t, "dir"), netnstest.New(t, "rs1"), netnstest.New(t, "sw")
	sw.IP(t, "link", "add", "br0", "type", "bridge")
	sw.LinkUp(t, "br0")
	for i, x := range []struct {
		ns        *netnstest.NS
		dev, addr string
	}{{cli, "c0", "5::2"}, {dir, "d0", "5::1"}, {rs1, "r0", "5::11"}} {
		p := fmt.Sprintf("p%d", i)
		netnstest.Veth(t, x.ns, x.dev, sw, p)
		sw.IP(t, "link", "set", p, "master", "br0")
		v4 := "10.0.5." + strings.TrimPrefix(x.addr, "5::")
		x.ns.AddrAdd(t, x.dev, v4+"/24")
		x.ns.IP(t, "-6", "addr", "add", "fd00:"+x.addr+"/64", "dev", x.dev, "nodad")
	}
	drRealServer(t, rs1, "10.0.5.100")
	drRealServer(t, dir, "10.0.5.100")
	// keepalived's VIP on the master's interface: the kernel answers ARP
	// and NDP for it there.
	dir.AddrAdd(t, "d0", "10.0.5.100/32")
	dir.IP(t, "-6", "addr", "add", "fd00:5::100/128", "dev", "d0", "nodad")
	dir.Sysctl(t, "net.ipv4.conf.all.rp_filter", "1")
	dir.Sysctl(t, "net.ipv4.conf.default.rp_filter", "0")
	dir.Sysctl(t, "net.ipv4.conf.d0.rp_filter", "0")
	startRealServer(t, rs1, "rs1")
	startRealServer(t, dir, "dir")
	startEcho(t, dir, ":9000")

	u := startUVSD(t, dir, `-A -t 10.0.5.100:80 -s rr
-a -t 10.0.5.100:80 -r 10.0.5.1 -g -w 1
-a -t 10.0.5.100:80 -r 10.0.5.11 -g -w 1
-A -t [fd00:5::100]:80 -s rr
-a -t [fd00:5::100]:80 -r fd00:5::1 -g -w 1
-a -t [fd00:5::100]:80 -r fd00:5::11 -g -w 1
-A -t 10.0.5.100:9000 -s rr
-a -t 10.0.5.100:9000 -r 10.0.5.1 -g -w 1
`)
	if out := dir.IP(t, "-d", "link", "show", "uvs-local"); !strings.Contains(out, "tun") || !strings.Contains(out, "UP") {
		t.Fatalf("no up local-delivery device in the director:\n%s", out)
	}
	for k, want := range map[string]string{"all": "0", "default": "1", "d0": "1", "uvs-local": "0"} {
		if got := sysctl(t, dir, "net.ipv4.conf."+k+".rp_filter"); got != want {
			t.Errorf("while uvsd runs, net.ipv4.conf.%s.rp_filter = %s, want %s", k, got, want)
		}
	}

	for _, url := range []string{"http://10.0.5.100/", "http://[fd00:5::100]/"} {
		seen := map[string]int{}
		var order []string
		for i := 0; i < 10; i++ {
			b := curl(t, cli, url)
			seen[b]++
			order = append(order, b)
		}
		if seen["dir"] != 5 || seen["rs1"] != 5 {
			t.Fatalf("%s: rr over the director itself and rs1 answered %v", url, order)
		}
	}
	// A large upload to the director's own echo server: the client's
	// stack sends segmentation-offload super-frames, delivered whole.
	if got, want := echoSum(t, cli, "10.0.5.100:9000", 8<<20); got != want {
		t.Fatalf("8 MB echoed through local delivery: sha256 %s, want %s", got, want)
	}
	// The director's own answers came from the director's stack, which
	// sends them to the client from the VIP directly.
	if out := cli.Exec(t, "ip", "neigh", "show", "10.0.5.100"); !strings.Contains(out, "lladdr") {
		t.Fatalf("client has no ARP entry for the VIP: %q", out)
	}

	u.stop(t)
	if out, err := dir.Run("ip", "link", "show", "uvs-local"); err == nil {
		t.Fatalf("the local-delivery device outlived uvsd:\n%s", out)
	}
	for k, want := range map[string]string{"all": "1", "default": "0", "d0": "0"} {
		if got := sysctl(t, dir, "net.ipv4.conf."+k+".rp_filter"); got != want {
			t.Errorf("after uvsd, net.ipv4.conf.%s.rp_filter = %s, want %s back", k, got, want)
		}
	}
}

func sysctl(t *testing.T, ns *netnstest.NS, key string) string {
	t.Helper()
	return strings.TrimSpace(ns.Exec(t, "sysctl", "-n", key))
}

// startEcho serves a TCP echo on addr inside ns until the test ends.
func startEcho(t *testing.T, ns *netnstest.NS, addr string) {
	serveTCP(t, ns, addr, func(c net.Conn) { _, _ = io.Copy(c, c) })
}

// serveTCP listens on addr inside ns until the test ends and runs handle
// on each connection (which it closes afterwards).
func serveTCP(t *testing.T, ns *netnstest.NS, addr string, handle func(net.Conn)) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("server on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

// echoSum sends n bytes to a TCP echo at addr from ns and returns the
// SHA-256 of what came back and of what was sent.
func echoSum(t *testing.T, ns *netnstest.NS, addr string, n int) (got, want string) {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 8*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	data := bigBody()[:n]
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		errc <- err
	}()
	h := sha256.New()
	m, err := io.Copy(h, c)
	if err != nil || m != int64(n) {
		t.Fatalf("echo from %s: %d of %d bytes: %v", addr, m, n, err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write to %s: %v", addr, err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(h.Sum(nil)), hex.EncodeToString(s[:])
}
