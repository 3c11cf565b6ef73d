package e2e

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestFullNATPortsSustained: one client opens sequential TCP connections
// through a FULLNAT service with ONE real server as fast as it can, each
// closed by the client first (it writes a byte, reads the echo, closes;
// the real server closes on EOF), for a bounded time or until fullnatConns
// connections. Every FULLNAT connection takes a local port of the
// director for (local address, real server:port); the director's entry
// then sits in TIME_WAIT for 120 s. With 4 536 local ports and no reuse,
// the ports ran out after 4 536 connections and every later SYN was
// dropped. The director must reuse a port whose previous connection to the
// same real server:port is finished (TIME_WAIT or CLOSE, as the kernel's
// tcp_tw_reuse does for its own sockets): no connection may fail. The
// sustained rate is logged (no timing assertion).
func TestFullNATPortsSustained(t *testing.T) {
	l := newFullNATLab(t)
	// The client's own ephemeral ports stay in TIME_WAIT after each
	// client-first close: give it every port so it never runs out first.
	l.cli.Sysctl(t, "net.ipv4.ip_local_port_range", "1024 65535")
	startEcho(t, l.rs[0], "10.0.11.11:9000")
	startUVSD(t, l.dir, "-A -t 10.0.1.100:9000 -s rr\n-a -t 10.0.1.100:9000 -r 10.0.11.11:9000 -b -w 1\n")

	var ok, failed int
	var firstErr error
	start := time.Now()
	err := l.cli.Do(func() error {
		for time.Since(start) < fullnatDuration && ok+failed < fullnatConns {
			if err := echoOnce("10.0.1.100:9000"); err != nil {
				if failed == 0 {
					firstErr = fmt.Errorf("connection %d: %w", ok+failed+1, err)
				}
				failed++
				continue
			}
			ok++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	t.Logf("%d connections in %v (%.0f conn/s sustained to one real server), %d failed",
		ok+failed, el.Round(time.Millisecond), float64(ok+failed)/el.Seconds(), failed)
	if failed > 0 {
		t.Fatalf("%d of %d sequential client-first-close connections through FULLNAT to one real server failed "+
			"(first: %v): the director ran out of local ports", failed, ok+failed, firstErr)
	}
	if ok < 100 {
		t.Fatalf("only %d connections in %v: the test measured nothing", ok, el)
	}
}

// The bounds of TestFullNATPortsSustained: more connections than the old
// local port range (61000–65535, 4 536 ports) held, or the time limit
// (long enough for a loaded machine, at 100 connections/s or more, to
// pass 4 536).
const (
	fullnatConns    = 6000
	fullnatDuration = 60 * time.Second
)

// echoOnce connects to addr, sends one byte, reads its echo and closes
// first. A SYN the director drops is retransmitted once (after 1 s)
// before the dial gives up.
func echoOnce(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 1500*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		return err
	}
	return nil
}
