package modes_test

import (
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/internal/pkttest"
	"github.com/uvs-lb/uvs/modes"
)

// TestNATUDPZeroChecksumIPv6: an IPv6 UDP datagram sent without checksum
// (RFC 6935, UDP tunnels) leaves every NAT and FULLNAT rewrite with a
// correct full checksum, as udp_snat_handler / udp_dnat_handler write it,
// not with an incremental update of 0 (a wrong value the receiver drops).
func TestNATUDPZeroChecksumIPv6(t *testing.T) {
	for _, tc := range natCases(natV6) {
		t.Run(tc.name, func(t *testing.T) {
			f := pkttest.Flow{V6: true, Proto: layers.IPProtocolUDP, Src: tc.inSrc.Addr().String(), Dst: tc.inDst.Addr().String(),
				Sport: tc.inSrc.Port(), Dport: tc.inDst.Port(), TTL: 64, Payload: 20}
			runNAT(t, f, tc, modes.CsumComplete, true)
		})
	}
}
