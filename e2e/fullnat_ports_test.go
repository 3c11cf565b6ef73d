package e2e

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
)

// TestFullNATPortsSustained: one client opens sequential TCP connections
// through a FULLNAT service with ONE real server as fast as it can, each
// closed by the client first (it writes a byte, reads the echo, closes;
// the real server closes on EOF), until fullnatConns connections or the
// time limit. Every FULLNAT connection takes a local port of the director
// for (local address, real server:port), and the director's entry then
// sits in TIME_WAIT for 120 s: without reuse, the ports ran out after as
// many connections as the range holds and every later SYN was dropped.
// The director must reuse a port whose previous connection to the same
// real server:port is finished (TIME_WAIT or CLOSE, quiet for 1 s, as the
// kernel's tcp_tw_reuse does for its own sockets): no connection may fail.
//
// The range is fullnatPorts ports (--lport-min/--lport-max), fewer than
// fullnatConns, so the test does not depend on the machine's speed: a
// loaded machine (60 connections/s) still passes the range within the
// time limit, and a fast one (up to about fullnatPorts connections/s)
// still finds every port quiet for a second. The sustained rate is logged
// (no timing assertion).
func TestFullNATPortsSustained(t *testing.T) {
	l := newFullNATLab(t)
	// The client's own ephemeral ports stay in TIME_WAIT after each
	// client-first close: give it every port so it never runs out first.
	l.cli.Sysctl(t, "net.ipv4.ip_local_port_range", "1024 65535")
	startEcho(t, l.rs[0], "10.0.11.11:9000")
	startUVSD(t, l.dir, "-A -t 10.0.1.100:9000 -s rr\n-a -t 10.0.1.100:9000 -r 10.0.11.11:9000 -b -w 1\n",
		"--lport-min", strconv.Itoa(fullnatPortMin), "--lport-max", strconv.Itoa(fullnatPortMin+fullnatPorts-1))

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
			"(first: %v): the director ran out of its %d local ports", failed, ok+failed, firstErr, fullnatPorts)
	}
	if ok < 100 {
		t.Fatalf("only %d connections in %v: the test measured nothing", ok, el)
	}
}

// The bounds of TestFullNATPortsSustained: local ports 61000–62999
// (outside Linux's default ip_local_port_range), 3 000 connections or
// 60 s.
const (
	fullnatPortMin  = 61000
	fullnatPorts    = 2000
	fullnatConns    = 3000
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
