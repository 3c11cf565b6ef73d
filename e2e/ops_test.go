package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// udpEcho answers each datagram to addr in ns with "name:" and the
// datagram.
func udpEcho(t *testing.T, ns *netnstest.NS, addr, name string) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		return err
	}); err != nil {
		t.Fatalf("udp echo %s: %v", addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
}

// TestOnePacketScheduling: a UDP service with -o (one-packet scheduling)
// and rr over two direct-routing real servers: four datagrams of one flow
// (one client socket) are each scheduled, so the real servers answer in
// turn, and uvsadm -Lnc lists no connection for them. Without -o all four
// went to one real server.
func TestOnePacketScheduling(t *testing.T) {
	l := newLANLab(t, false)
	for i, rs := range l.rs {
		drRealServer(t, rs, "10.0.5.100")
		// Bound to the VIP, so that the reply leaves from it (the lab's
		// wildcard echo server would answer from the real server's own
		// address, which the client's connected socket refuses).
		udpEcho(t, rs, "10.0.5.100:5354", fmt.Sprintf("rs%d", i+1))
	}
	startUVSD(t, l.dir, `-A -u 10.0.5.100:5354 -s rr -o
-a -u 10.0.5.100:5354 -r 10.0.5.11 -g
-a -u 10.0.5.100:5354 -r 10.0.5.12 -g
`)
	if out := uvsadmIn(t, l.dir, "-Ln"); !strings.Contains(out, "ops") {
		t.Fatalf("uvsadm -Ln does not show ops:\n%s", out)
	}
	c := dialUDP(t, l.cli, "10.0.5.100:5354")
	defer c.Close()
	buf := make([]byte, 2048)
	var names []string
	for i := range 4 {
		payload := fmt.Sprintf("ops%d", i)
		var reply string
		for try := 0; try < 5 && reply == ""; try++ { // the first may wait for ARP
			if _, err := c.Write([]byte(payload)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if n, err := c.Read(buf); err == nil {
				reply = string(buf[:n])
			}
		}
		name, got, ok := strings.Cut(reply, ":")
		if !ok || got != payload {
			t.Fatalf("datagram %d: reply %q", i, reply)
		}
		names = append(names, name)
	}
	for i := 1; i < len(names); i++ {
		if names[i] == names[i-1] {
			t.Fatalf("one flow's datagrams were answered by %v: not scheduled one by one", names)
		}
	}
	for _, line := range strings.Split(uvsadmIn(t, l.dir, "-Lnc"), "\n") {
		if f := strings.Fields(line); len(f) == 6 && f[0] == "UDP" {
			t.Fatalf("a one-packet flow left a connection: %q", line)
		}
	}
}
