package modes_test

import (
	"fmt"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/internal/pkttest"

	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
)

// FuzzRewrite applies every rewrite to arbitrary frames: none may panic,
// and a rewrite of a packet whose checksums verified (or whose L4
// checksum the rewrite recomputes in full) must leave checksums that verify.
func FuzzRewrite(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		a := natV4
		if v6 {
			a = natV6
		}
		for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
			fr := pkttest.Flow{V6: v6, Proto: proto, Src: a.cip.Addr().String(), Dst: a.vip.Addr().String(), Sport: 1, Dport: 80, TTL: 9, Payload: 17}.Frame(f)
			f.Add(fr, false)
			f.Add(fr, true)
			f.Add(icmpError(f, v6, a.rip.Addr(), a.cip.Addr(), 9, quotedPacket(f, v6, proto, a.cip, a.rip)), false)
			f.Add(icmpError(f, v6, a.rip.Addr(), a.lip.Addr(), 9, quotedPacket(f, v6, proto, a.lip, a.rip)), false)
		}
	}
	buf := make([]byte, 4096)
	f.Fuzz(func(t *testing.T, frame []byte, partial bool) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("partial %t, %d bytes %.200q", partial, len(frame), frame) })()
		if len(frame) > len(buf)-64 {
			return
		}
		var p header.Parsed
		p.Parse(frame)
		a := natV4
		if p.IPVersion == 6 {
			a = natV6
		}
		// SCTP's CRC32c is not an Internet checksum (L4ChecksumValid
		// knows only TCP, UDP and ICMP).
		l4valid := func(b []byte, q *header.Parsed) bool {
			if q.Proto == header.ProtoSCTP {
				return q.L4Off+header.SCTPHeaderSize <= q.End && q.End <= len(b) && header.SCTPChecksumOK(b[q.L4Off:q.End])
			}
			return header.L4ChecksumValid(b, q)
		}
		l4ok := p.Reason == header.ReasonNone && l4valid(frame, &p)
		ipok := p.Kind != header.KindIPv4 || header.IPv4(frame[p.L3Off:]).ChecksumValid()
		run := func(name string, completes bool, fn func(b []byte, q *header.Parsed) modes.Result) {
			b := append([]byte(nil), frame...)
			q := p
			r := fn(b, &q)
			if !r.OK() {
				if string(b) != string(frame) {
					t.Fatalf("%s: frame modified on %v", name, r.Verdict)
				}
				return
			}
			var q2 header.Parsed
			q2.Parse(b)
			if ipok && q2.Kind == header.KindIPv4 && !header.IPv4(b[q2.L3Off:]).ChecksumValid() {
				t.Fatalf("%s: IPv4 checksum broken", name)
			}
			if (l4ok || completes) && q2.Reason == header.ReasonNone && !l4valid(b, &q2) {
				t.Fatalf("%s: L4 checksum broken", name)
			}
		}
		csum := modes.CsumComplete
		if partial {
			csum = modes.CsumPartial
		}
		run("nat-req", partial, func(b []byte, q *header.Parsed) modes.Result { return modes.NATRequest(b, q, a.rip, csum) })
		run("nat-rep", partial, func(b []byte, q *header.Parsed) modes.Result { return modes.NATReply(b, q, a.vip, csum) })
		run("fnat-req", partial, func(b []byte, q *header.Parsed) modes.Result {
			return modes.FullNATRequest(b, q, a.lip, a.rip, csum)
		})
		run("fnat-rep", partial, func(b []byte, q *header.Parsed) modes.Result { return modes.FullNATReply(b, q, a.vip, a.cip, csum) })
		run("icmp-in", true, func(b []byte, q *header.Parsed) modes.Result { return modes.NATICMPIn(b, q, a.rip) })
		run("icmp-out", true, func(b []byte, q *header.Parsed) modes.Result { return modes.NATICMPOut(b, q, a.vip) })
		run("fnat-icmp-in", true, func(b []byte, q *header.Parsed) modes.Result { return modes.FullNATICMPIn(b, q, a.lip, a.rip) })
		run("fnat-icmp-out", true, func(b []byte, q *header.Parsed) modes.Result { return modes.FullNATICMPOut(b, q, a.vip, a.cip) })
		run("dr", false, func(b []byte, q *header.Parsed) modes.Result { return modes.DR(b, q, [6]byte{1}, [6]byte{2}) })
		for _, gue := range []uint16{0, 6080} {
			n := copy(buf[64:], frame)
			q := p
			tun := modes.Tunnel{Src: natV4.lip.Addr(), Dst: natV4.rip.Addr(), MTU: 1500, GUEPort: gue}
			off, ln, r := modes.Encap(buf, 64, n, &q, &tun, csum)
			if r.OK() && (off != 64-tun.Overhead() || ln != q.L2Len+tun.Overhead()+q.IPLen || off+ln > len(buf)) {
				t.Fatalf("encap off %d len %d", off, ln)
			}
		}
	})
}
