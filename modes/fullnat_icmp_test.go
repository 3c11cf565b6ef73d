package modes_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/modes"
)

// fullnatICMPCase is one row of the FULLNAT ICMP table: an ICMP error from
// reporter to dst quoting qSrc → qDst goes in; the error from wantSrc to
// wantDst quoting wantQSrc → wantQDst, one hop older, comes out. Both are
// built with gopacket, so the output must equal the expected frame byte for
// byte (quoted checksums included).
type fullnatICMPCase struct {
	name               string
	reporter, dst      netip.Addr
	qSrc, qDst         netip.AddrPort
	wantSrc, wantDst   netip.Addr
	wantQSrc, wantQDst netip.AddrPort
	apply              func(frame []byte, p *header.Parsed) modes.Result
}

// fullnatICMPCases: the connection is client CIP:cport → VIP:vport, sent to
// the real server as LIP:lport → RIP:rport.
func fullnatICMPCases(a natAddrs, router netip.Addr) []fullnatICMPCase {
	out := func(f []byte, p *header.Parsed) modes.Result { return modes.FullNATICMPOut(f, p, a.vip, a.cip) }
	in := func(f []byte, p *header.Parsed) modes.Result { return modes.FullNATICMPIn(f, p, a.lip, a.rip) }
	return []fullnatICMPCase{
		// The real server refuses the request LIP → RIP (no listener).
		{"out/real-server", a.rip.Addr(), a.lip.Addr(), a.lip, a.rip, a.vip.Addr(), a.cip.Addr(), a.cip, a.vip, out},
		// A router between director and real server reports it.
		{"out/router", router, a.lip.Addr(), a.lip, a.rip, a.vip.Addr(), a.cip.Addr(), a.cip, a.vip, out},
		// The client refuses the reply VIP → CIP.
		{"in/client", a.cip.Addr(), a.vip.Addr(), a.vip, a.cip, a.lip.Addr(), a.rip.Addr(), a.rip, a.lip, in},
		// A router on the client side reports it.
		{"in/router", router, a.vip.Addr(), a.vip, a.cip, a.lip.Addr(), a.rip.Addr(), a.rip, a.lip, in},
	}
}

func TestFullNATICMP(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		a, router, hl := natV4, netip.MustParseAddr("10.9.9.9"), header.IPv4MinSize
		if v6 {
			a, router, hl = natV6, netip.MustParseAddr("2001:db8:9::9"), header.IPv6Size
		}
		for _, tc := range fullnatICMPCases(a, router) {
			for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
				// Full quotes, and RFC 792's minimum (IP header + 8
				// bytes: the TCP checksum is not in it, the UDP one is).
				for _, short := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/v6=%v/%v/short=%v", tc.name, v6, proto, short), func(t *testing.T) {
						q, wq := quotedPacket(t, v6, proto, tc.qSrc, tc.qDst), quotedPacket(t, v6, proto, tc.wantQSrc, tc.wantQDst)
						if short {
							q, wq = q[:hl+8], wq[:hl+8]
						}
						frame := icmpError(t, v6, tc.reporter, tc.dst, 30, q)
						want := icmpError(t, v6, tc.wantSrc, tc.wantDst, 29, wq)
						var p header.Parsed
						p.Parse(frame)
						if !p.IsICMPError() {
							t.Fatalf("not an ICMP error: %v %+v", p.Reason, p.Inner)
						}
						if r := tc.apply(frame, &p); !r.OK() {
							t.Fatalf("verdict %v", r.Verdict)
						}
						if !bytes.Equal(frame, want) {
							t.Fatalf("translated error differs from the expected frame:\n got  %x\n want %x", frame, want)
						}
						checkChecksums(t, frame)
						var r header.Parsed
						r.Parse(frame)
						if r.Inner != p.Inner || r.Src != p.Src || r.Dst != p.Dst || r.TTL != p.TTL {
							t.Errorf("parsed not updated:\n got  %+v\n want %+v", p, r)
						}
					})
				}
			}
		}
	}
}

// TestFullNATICMPRefused: nothing changes when the translation does not
// apply.
func TestFullNATICMPRefused(t *testing.T) {
	a := natV4
	quoted := quotedPacket(t, false, layers.IPProtocolUDP, a.lip, a.rip)
	for _, tc := range []struct {
		name  string
		frame []byte
		apply func(frame []byte, p *header.Parsed) modes.Result
		want  modes.Verdict
	}{
		{"ttl-1", icmpError(t, false, a.rip.Addr(), a.lip.Addr(), 1, quoted),
			func(f []byte, p *header.Parsed) modes.Result { return modes.FullNATICMPOut(f, p, a.vip, a.cip) }, modes.TTLExceeded},
		{"family", icmpError(t, false, a.rip.Addr(), a.lip.Addr(), 30, quoted),
			func(f []byte, p *header.Parsed) modes.Result { return modes.FullNATICMPOut(f, p, natV6.vip, natV6.cip) }, modes.Unsupported},
		{"mixed-family", icmpError(t, false, a.cip.Addr(), a.vip.Addr(), 30, quoted),
			func(f []byte, p *header.Parsed) modes.Result { return modes.FullNATICMPIn(f, p, a.lip, natV6.rip) }, modes.Unsupported},
		{"not-an-error", quoted14(t, quoted),
			func(f []byte, p *header.Parsed) modes.Result { return modes.FullNATICMPIn(f, p, a.lip, a.rip) }, modes.Unsupported},
	} {
		orig := append([]byte(nil), tc.frame...)
		var p header.Parsed
		p.Parse(tc.frame)
		if r := tc.apply(tc.frame, &p); r.Verdict != tc.want {
			t.Errorf("%s: verdict %v, want %v", tc.name, r.Verdict, tc.want)
		}
		if !bytes.Equal(tc.frame, orig) {
			t.Errorf("%s: frame modified", tc.name)
		}
	}
}

// quoted14 puts an Ethernet header in front of an IP packet.
func quoted14(t *testing.T, ip []byte) []byte {
	t.Helper()
	return append([]byte{2, 0, 0, 0, 0, 0xbb, 2, 0, 0, 0, 0, 0xaa, 0x08, 0}, ip...)
}

func TestFullNATICMPNoAllocs(t *testing.T) {
	a := natV6
	quoted := quotedPacket(t, true, layers.IPProtocolUDP, a.lip, a.rip)
	frame := icmpError(t, true, a.rip.Addr(), a.lip.Addr(), 255, quoted)
	var p header.Parsed
	if n := testing.AllocsPerRun(100, func() {
		p.Parse(frame)
		p.TTL = 255
		modes.FullNATICMPOut(frame, &p, a.vip, a.cip)
		p.Parse(frame)
		modes.FullNATICMPIn(frame, &p, a.lip, a.rip)
	}); n != 0 {
		t.Errorf("FULLNAT ICMP translation allocates %v times", n)
	}
}
