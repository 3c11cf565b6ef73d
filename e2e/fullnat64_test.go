package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// FULLNAT across address families, end to end, in the FULLNAT lab (each
// real server on a link of its own with the director, no route to the
// client): an IPv6 VIP served by the IPv4 real servers (NAT64, as DPVS
// does it) and an IPv4 VIP served by their IPv6 addresses (NAT46). The
// real servers answer with the address they see the client as, which must
// be the director's local address of their own family on their link
// (the route's source, the services having no pool).

const (
	x64TCP, x64UDP = 9100, 9101 // service ports; the real servers listen on the same
	closedX64Port  = 9109       // nothing listens there
)

func x64Rules() string {
	var b strings.Builder
	for _, s := range []struct{ vip, rs string }{
		{"[fd00:1::100]", "10.0.%d.11"}, // NAT64
		{"10.0.1.100", "[fd00:%d::11]"}, // NAT46
	} {
		for _, port := range []int{x64TCP, x64UDP, closedX64Port} {
			proto := "-t"
			if port != x64TCP {
				proto = "-u"
			}
			fmt.Fprintf(&b, "-A %s %s:%d -s rr\n", proto, s.vip, port)
			for i := 11; i <= 12; i++ {
				fmt.Fprintf(&b, "-a %s %s:%d -r %s:%d -b -w 1\n", proto, s.vip, port, fmt.Sprintf(s.rs, i), port)
			}
		}
	}
	return b.String()
}

// startUDPWhoAmI answers each datagram on addr inside ns with the
// sender's address.
func startUDPWhoAmI(t *testing.T, ns *netnstest.NS, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		return err
	}); err != nil {
		t.Fatalf("udp server on %s: %v", addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(from.String()), from)
		}
	}()
}

// TestFullNATAcrossFamilies: a client reaches a TCP and a UDP service on
// an IPv6 VIP served by IPv4 real servers, and on an IPv4 VIP served by
// IPv6 real servers; each real server sees the director's local address
// of its own family as the source; 300 KB echoed over the TCP connection
// come back intact (full-size segments both ways: the translated headers
// and the MSS clamp must fit the 1500-byte links); a datagram to a closed
// port comes back as ECONNREFUSED (the real server's ICMP error,
// translated to the client's family).
func TestFullNATAcrossFamilies(t *testing.T) {
	l := newFullNATLab(t)
	for _, rs := range l.rs {
		startWhoAmI(t, rs, fmt.Sprintf(":%d", x64TCP))
		startUDPWhoAmI(t, rs, fmt.Sprintf(":%d", x64UDP))
	}
	startUVSD(t, l.dir, x64Rules())
	for _, c := range []struct {
		name, vip string
		locals    []string // the director's local address on each real server's link
	}{
		{"nat64", "[fd00:1::100]", []string{"10.0.11.1", "10.0.12.1"}},
		{"nat46", "10.0.1.100", []string{"fd00:11::1", "fd00:12::1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			isLocal := func(from string) bool {
				host, _, err := net.SplitHostPort(from)
				return err == nil && (host == c.locals[0] || host == c.locals[1])
			}
			seen := map[string]bool{}
			for range 2 {
				conn, from := dialWhoAmI(t, l.cli, fmt.Sprintf("%s:%d", c.vip, x64TCP))
				if !isLocal(from) {
					conn.Close()
					t.Fatalf("TCP: the real server saw the client as %s, want one of the local addresses %v", from, c.locals)
				}
				host, _, _ := net.SplitHostPort(from)
				seen[host] = true
				echo300K(t, conn)
				conn.Close()
			}
			if len(seen) != 2 {
				t.Errorf("TCP: rr reached local addresses %v, want both real servers", seen)
			}
			for range 2 {
				if from := udpExchange(t, l.cli, fmt.Sprintf("%s:%d", c.vip, x64UDP), "who?"); !isLocal(from) {
					t.Fatalf("UDP: the real server saw the client as %s, want one of %v", from, c.locals)
				}
			}
			err := refusedRead(t, l.cli, fmt.Sprintf("%s:%d", c.vip, closedX64Port))
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("datagram to a closed port of the other family's real server: %v, want ECONNREFUSED "+
					"(the real server's ICMP error translated back to the client)", err)
			}
		})
	}
}

// echo300K sends 300 KB over c (a whoami connection, echoing after its
// first line) and checks they come back unchanged.
func echo300K(t *testing.T, c net.Conn) {
	t.Helper()
	data := bigBody()[:300<<10]
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		errc <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("echo: read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("echo: write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echo: 300 KB came back changed")
	}
}
