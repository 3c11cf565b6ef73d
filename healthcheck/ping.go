package healthcheck

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// PingCheck is keepalived's PING_CHECK (check_ping.c): one ICMP or ICMPv6
// echo request to Target.Addr's address (the port is ignored); an echo
// reply from that address, with our identifier and this probe's sequence
// number, within Target.Timeout is success. The sequence number goes up by
// one per probe.
//
// Like keepalived it first tries an unprivileged ICMP datagram socket (the
// kernel picks the identifier and hands us only our replies; allowed by
// net.ipv4.ping_group_range), and falls back to a raw socket (root or
// CAP_NET_RAW), where replies are matched by identifier too. Use one
// PingCheck per checker: it holds the sequence number.
type PingCheck struct {
	seq    atomic.Uint32
	idOnce sync.Once
	id     uint16
	// forceRaw skips the datagram socket (tests of the raw path).
	forceRaw bool
}

// pingPayload is the echo data: a fixed marker, checked in the reply.
var pingPayload = []byte("uvs PING_CHECK..")

// Probe sends one echo request and waits for its reply.
func (p *PingCheck) Probe(ctx context.Context, t Target) Result {
	p.idOnce.Do(func() {
		var b [2]byte
		_, _ = rand.Read(b[:])
		p.id = binary.BigEndian.Uint16(b[:])
	})
	dst := t.Addr.Addr().Unmap()
	name := fmt.Sprintf("[%s]", dst)
	fail := func(format string, args ...any) Result {
		return Result{Msg: fmt.Sprintf("PING to %s ", name) + fmt.Sprintf(format, args...)}
	}
	if !dst.IsValid() {
		return fail("failed: no address.")
	}
	conn, raw, err := pingListen(dst.Is6(), t, p.forceRaw)
	if err != nil {
		return fail("failed: %v.", err)
	}
	defer conn.Close()
	ctx, cancel := probeContext(ctx, t)
	defer cancel()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(longAgo) })
	defer stop()

	seq := uint16(p.seq.Add(1))
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: int(p.id), Seq: int(seq), Data: pingPayload}}
	proto := 1
	if dst.Is6() {
		msg.Type, proto = ipv6.ICMPTypeEchoRequest, 58
	}
	b, err := msg.Marshal(nil) // the kernel fills the ICMPv6 checksum
	if err != nil {
		return fail("failed: %v.", err)
	}
	var to net.Addr = &net.UDPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
	if raw {
		to = &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
	}
	if _, err := conn.WriteTo(b, to); err != nil {
		return fail("failed: %v.", err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if IsTimeout(err) {
				return fail("timeout.")
			}
			return fail("failed: %v.", err)
		}
		if pingAddr(from) != dst.WithZone("") {
			continue
		}
		if PingReplyMatches(buf[:n], proto, raw, p.id, seq) {
			return Result{OK: true, Msg: fmt.Sprintf("PING to %s success.", name)}
		}
	}
}

// PingReplyMatches reports whether an ICMP message (without IP header) is
// the echo reply to (id, seq) with our payload. On a datagram ping socket
// the kernel rewrites the identifier, so it is only compared on raw
// sockets (checkID).
func PingReplyMatches(b []byte, proto int, checkID bool, id, seq uint16) bool {
	m, err := icmp.ParseMessage(proto, b)
	if err != nil {
		return false
	}
	if m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply {
		return false
	}
	e, ok := m.Body.(*icmp.Echo)
	if !ok || e.Seq != int(seq) || checkID && e.ID != int(id) {
		return false
	}
	return bytes.Equal(e.Data, pingPayload)
}

// pingAddr extracts the sender's address, zone dropped.
func pingAddr(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	default:
		return netip.Addr{}
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}
