package e2e

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// closedPort is a UDP port nothing listens on in the real servers.
const closedPort = 7777

// TestFullNATICMPPortUnreachable: a UDP datagram through a FULLNAT
// service reaches a real server with no listener on the port. The real
// server's kernel answers ICMP port unreachable to the director's local
// address (the datagram's source after FULLNAT); uvsd must translate the
// error back through the connection, as IPVS does (ip_vs_out_icmp), so the
// client's connected socket fails with ECONNREFUSED on its next read, as
// it would talking to the real server directly. IPv4 and IPv6.
func TestFullNATICMPPortUnreachable(t *testing.T) {
	netnstest.RequireTool(t, "nstat")
	l := newFullNATLab(t)
	startUVSD(t, l.dir, l.rules("-u", closedPort))
	for _, c := range []struct {
		family, vip string
		noPorts     string // the real servers' counter of datagrams to a closed port
		unreach     string // and of destination unreachable errors they sent
	}{
		{"IPv4", fmt.Sprintf("10.0.1.100:%d", closedPort), "UdpNoPorts", "IcmpOutDestUnreachs"},
		{"IPv6", fmt.Sprintf("[fd00:1::100]:%d", closedPort), "Udp6NoPorts", "Icmp6OutDestUnreachs"},
	} {
		t.Run(c.family, func(t *testing.T) {
			count := func(name string) uint64 {
				var n uint64
				for _, rs := range l.rs {
					n += nstatCounter(t, rs, name)
				}
				return n
			}
			noPorts, unreach := count(c.noPorts), count(c.unreach)
			err := refusedRead(t, l.cli, c.vip)
			noPorts, unreach = count(c.noPorts)-noPorts, count(c.unreach)-unreach
			switch {
			case noPorts == 0:
				t.Fatalf("the datagram to %s never reached a real server's closed port (%s did not move; read: %v)",
					c.vip, c.noPorts, err)
			case unreach == 0:
				t.Fatalf("a real server got the datagram to its closed port but sent no ICMP port unreachable (%s did not move)", c.unreach)
			case errors.Is(err, syscall.ECONNREFUSED):
				// The real server's refusal reached the client's socket.
			case isTimeout(err):
				t.Fatalf("the real server answered ICMP port unreachable to the director's FULLNAT local address, "+
					"but the client's connected socket saw no ECONNREFUSED within %v: uvsd did not translate "+
					"the FULLNAT ICMP error back to the client (%s)", udpTimeout, c.vip)
			default:
				t.Fatalf("read from %s: %v, want ECONNREFUSED", c.vip, err)
			}
		})
	}
}

// refusedRead sends one datagram from a connected UDP socket in ns to addr
// and returns the error of the read that follows; a reply fails the test.
// A connected socket reports an ICMP error for its flow as ECONNREFUSED
// (port unreachable) on its next call.
func refusedRead(t *testing.T, ns *netnstest.NS, addr string) error {
	t.Helper()
	c := dialUDP(t, ns, addr)
	defer c.Close()
	if _, err := c.Write([]byte("is anyone there?")); err != nil {
		t.Fatalf("udp write to %s: %v", addr, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(udpTimeout))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err == nil {
		t.Fatalf("reply %q from %s, where nothing listens", buf[:n], addr)
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
