package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
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

// TestFullNATLaddrPool: a FULLNAT service with two local addresses
// (--add-laddr, -P) and one local port: its first two connections leave
// from each address in turn, a third finds no port on either and is
// refused, -G counts one connection on each address; once the second
// connection is closed (client first), a new connection takes its
// address and port again, as soon as the port has been quiet in
// TIME_WAIT for a second, although round-robin would start at the first,
// still busy, address.
func TestFullNATLaddrPool(t *testing.T) {
	l := newFullNATLab(t)
	l.dir.AddrAdd(t, "d1", "10.0.11.201/24")
	l.dir.AddrAdd(t, "d1", "10.0.11.202/24")
	startWhoAmI(t, l.rs[0], "10.0.11.11:9000")
	startUVSD(t, l.dir, "-A -t 10.0.1.100:9000 -s rr\n-a -t 10.0.1.100:9000 -r 10.0.11.11:9000 -b -w 1\n"+
		"-P -t 10.0.1.100:9000 -z 10.0.11.201\n-P -t 10.0.1.100:9000 -z 10.0.11.202\n",
		"--lport-min", "61000", "--lport-max", "61000")

	a, fromA := dialWhoAmI(t, l.cli, "10.0.1.100:9000")
	defer a.Close()
	b, fromB := dialWhoAmI(t, l.cli, "10.0.1.100:9000")
	if fromA != "10.0.11.201:61000" || fromB != "10.0.11.202:61000" {
		t.Fatalf("two connections came from %s and %s, want 10.0.11.201:61000 and 10.0.11.202:61000 (pool round-robin)", fromA, fromB)
	}
	if c, err := dialIn(l.cli, "10.0.1.100:9000"); err == nil {
		c.Close()
		t.Fatal("a third connection got through with both local addresses' only port in use")
	}
	g := mustUVSADM(t, l.dir, "-G", "-t", "10.0.1.100:9000")
	for _, la := range []string{"10.0.11.201", "10.0.11.202"} {
		// LADDR, CONFLICTS, CONNS.
		if !regexp.MustCompile(regexp.QuoteMeta(la) + `\s+\d+\s+1(\s|$)`).MatchString(g) {
			t.Errorf("-G does not show one connection on %s:\n%s", la, g)
		}
	}
	b.Close()
	var from string
	wait.For(t, 15*time.Second, func() bool {
		c, err := dialIn(l.cli, "10.0.1.100:9000")
		if err != nil {
			return false
		}
		defer c.Close()
		from, err = readLine(c)
		return err == nil
	}, "a connection after the second closed (its port quiet in TIME_WAIT)")
	if from != "10.0.11.202:61000" {
		t.Fatalf("the connection after the second closed came from %s, want 10.0.11.202:61000", from)
	}
}

// startWhoAmI serves, on addr inside ns, a line with the peer's address
// to each connection, then an echo until the peer closes.
func startWhoAmI(t *testing.T, ns *netnstest.NS, addr string) {
	serveTCP(t, ns, addr, func(c net.Conn) {
		if _, err := fmt.Fprintln(c, c.RemoteAddr()); err == nil {
			_, _ = io.Copy(c, c)
		}
	})
}

// dialIn connects to addr from ns, giving up after one SYN retransmission.
func dialIn(ns *netnstest.NS, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 1500*time.Millisecond)
		return err
	})
	return c, err
}

// dialWhoAmI connects to a whoami server and returns the connection and
// the address the server saw.
func dialWhoAmI(t *testing.T, ns *netnstest.NS, addr string) (net.Conn, string) {
	t.Helper()
	c, err := dialIn(ns, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	from, err := readLine(c)
	if err != nil {
		c.Close()
		t.Fatalf("read from %s: %v", addr, err)
	}
	return c, from
}

func readLine(c net.Conn) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	s, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(s), err
}
