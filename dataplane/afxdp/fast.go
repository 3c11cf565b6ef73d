package afxdp

import (
	"encoding/binary"

	"github.com/cilium/ebpf/asm"

	"github.com/uvs-lb/uvs/header"
)

// The fast path: established IPv4 NAT, FULLNAT, DR and TUN (IPIP) flows
// forwarded by the XDP program itself, without a trip through an AF_XDP
// socket and uvsd's worker.
//
// The worker installs one entry per direction of a connection once it has
// forwarded a packet of that direction on it (a TCP connection once it is
// ESTABLISHED): the packet's 5-tuple as received, the addresses and ports
// the rewrite puts in (NAT: the real server's on the way in, the VIP's on
// the way out; FULLNAT both ends; DR and TUN none; TUN the tunnel's
// ends), the Ethernet addresses and interface the worker sent it with,
// the MTU of that link and the checksum adjustments of the rewrite. The
// program then handles a frame of that flow as the worker would have: TTL
// decremented, addresses and ports rewritten, the IPv4 and L4 checksums
// updated incrementally (RFC 1624), for TUN an outer IPv4 header put in
// front (fastEncap), the MAC addresses replaced, and sends it with
// bpf_redirect. It counts the packets and bytes of each entry and the
// time of its last packet, per CPU; the data plane reads them back
// (dataplane.FastPath) for the connection's timer and the statistics.
//
// Everything else takes the usual way to the worker: a frame with an
// 802.1Q tag, IP options, a fragment, Ethernet padding, an IPv4 header
// checksum that does not verify, a TCP data offset or UDP length the
// packet does not hold (the worker drops those), a TCP segment with SYN,
// FIN or RST (the connection's state changes, which only the
// worker follows), a TTL that would run out, a packet larger than the
// egress MTU (the worker fragments it or answers with an ICMP error), and
// a packet whose L4 checksum field holds just the pseudo-header sum (a
// local sender left it to offload: the worker completes it; XDP cannot),
// and for TUN a packet without DF (its outer header would take an IP ID
// from the worker's per-destination counter).

// mapFast is the name of the fast path's flow map.
const mapFast = "uvs_fast"

// Stack slots of the fast path (offsets from R10).
const (
	stTagged  = -60 // 1 once an 802.1Q tag was skipped
	stFastKey = -80 // fastKey, 16 bytes
	stFastVal = -88 // the flow's value across bpf_xdp_adjust_head
)

// xdpAborted is XDP_ABORTED: the frame is dropped and the xdp_exception
// tracepoint fires. Only a failed bpf_xdp_adjust_head returns it, which a
// frame with the XDP_PACKET_HEADROOM every driver gives never meets.
const xdpAborted = 0

// fastKey is a flow as received: the map's key.
type fastKey struct {
	Src, Dst [4]byte
	SrcPort  [2]byte // network order, as in the header
	DstPort  [2]byte
	Proto    uint8
	_        [3]uint8
}

// fastValue is a flow's rewrite and, per CPU, its counters: the map's
// value. The offsets are the fv* constants.
type fastValue struct {
	DstAddr [4]byte // the destination written (Mode&fastSetDst)
	DstPort [2]byte // network order
	Mode    uint8   // fastSetDst | fastSetSrc: NAT one, FULLNAT both, DR neither
	_       uint8
	DstMAC  [6]byte
	SrcMAC  [6]byte
	Ifindex uint32  // where the frame leaves
	MTU     uint16  // the largest IP packet sent; larger ones go to the worker
	IPAdj   uint16  // IPv4 header checksum adjustment (addresses and TTL)
	L4Adj   uint16  // TCP/UDP checksum adjustment (addresses and ports)
	SrcPort [2]byte // the source port written (Mode&fastSetSrc), network order
	SrcAddr [4]byte // the source written
	_       uint32
	Packets uint64
	Bytes   uint64 // IP bytes (the IPv4 total length)
	Last    uint64 // bpf_ktime_get_ns of the last packet (CLOCK_MONOTONIC)
	// Installed is the CLOCK_MONOTONIC reading at which uvsd put the
	// flow; the program does not read it.
	Installed uint64
}

// Mode bits.
const (
	fastSetDst = 1
	fastSetSrc = 2
	// fastEncap: TUN. The packet keeps its addresses and ports (TTL
	// decremented) and is sent in IPIP: an outer IPv4 header from
	// SrcAddr (the director's address towards the real server) to
	// DstAddr (the real server) in front of it, as modes.Encap writes it
	// for an inner packet with DF (ID 0, DF set, the inner TOS with CE
	// sent as ECT(0), the decremented inner TTL). MTU is then the largest
	// inner packet.
	fastEncap = 4
)

// Offsets of fastValue's fields.
const (
	fvDstAddr = 0
	fvDstPort = 4
	fvMode    = 6
	fvDstMAC  = 8
	fvSrcMAC  = 14
	fvIfindex = 20
	fvMTU     = 24
	fvIPAdj   = 26
	fvL4Adj   = 28
	fvSrcPort = 30
	fvSrcAddr = 32
	fvPackets = 40
	fvBytes   = 48
	fvLast    = 56
	fvSize    = 72
)

// IPv4 header fields the fast path reads (untagged frames only).
const (
	ipv4TTL   = ethLen + header.IPv4TTLOff
	ipv4Csum  = ethLen + header.IPv4ChecksumOff
	tcpFlags  = 13
	tcpMinLen = header.TCPMinSize
	udpLen    = header.UDPSize
)

// csumAdd adds b to a in one's complement (16 bits, folded).
func csumAdd(a, b uint32) uint32 {
	s := a + b
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return s
}

// csumAdj returns the one's complement adjustment that replacing the
// bytes old with new (of even and equal length) makes to a checksum over
// them (RFC 1624: ~m + m'), in the byte order in which the program loads
// header fields (native).
func csumAdj(old, new []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(old); i += 2 {
		s = csumAdd(s, uint32(^binary.NativeEndian.Uint16(old[i:])))
		s = csumAdd(s, uint32(binary.NativeEndian.Uint16(new[i:])))
	}
	return s
}

// ttlAdj is the adjustment of decrementing the TTL (the word TTL,
// protocol; any TTL above 1 gives the same).
func ttlAdj() uint32 {
	return csumAdj([]byte{64, 6}, []byte{63, 6})
}

// needTo jumps to label unless ptr+n <= data_end (R8).
func (b *builder) needTo(ptr asm.Register, n int32, label string) {
	b.emit(
		asm.Mov.Reg(asm.R2, ptr),
		asm.Add.Imm(asm.R2, n),
		asm.JGT.Reg(asm.R2, asm.R8, label),
	)
}

// fold folds the one's complement sum in r to 16 bits (two rounds: r is
// at most a few 17-bit terms); tmp is clobbered.
func (b *builder) fold(r, tmp asm.Register) {
	for range 2 {
		b.emit(
			asm.Mov.Reg(tmp, r),
			asm.RSh.Imm(tmp, 16),
			asm.And.Imm(r, 0xffff),
			asm.Add.Reg(r, tmp),
		)
	}
}

// ipv4Sum leaves in r the folded one's complement sum of the 20-byte IPv4
// header of the untagged frame at frame (0xffff when its checksum
// verifies); tmp is clobbered.
func (b *builder) ipv4Sum(frame, r, tmp asm.Register) {
	b.emit(asm.Mov.Imm(r, 0))
	for off := int16(0); off < ipv4Min; off += 2 {
		b.emit(
			asm.LoadMem(tmp, frame, ethLen+off, asm.Half),
			asm.Add.Reg(r, tmp),
		)
	}
	b.fold(r, tmp)
}

// csumUpdate emits csum' = ~(~csum + adj) for the 16-bit checksum in r and
// the adjustment at R6+adjOff; tmp is clobbered.
func (b *builder) csumUpdate(r, tmp asm.Register, adjOff int16) {
	b.emit(
		asm.Xor.Imm(r, 0xffff),
		asm.LoadMem(tmp, asm.R6, adjOff, asm.Half),
		asm.Add.Reg(r, tmp),
	)
	b.fold(r, tmp)
	b.emit(asm.Xor.Imm(r, 0xffff))
}

// fast4 emits the fast path at the start of the IPv4 section's whole-packet
// part (label "whole4"): on entry R2 is the header length, R3 the total
// length, R4 the fragment bits, R5 the protocol, R9 the L4 header. A frame
// it does not forward continues at "slow4" with those registers as they
// were (R4 and R5 reloaded where a helper call clobbered them).
func (b *builder) fast4() {
	b.emit(
		asm.JNE.Imm(asm.R4, 0, "slow4"),
		asm.LoadMem(asm.R1, asm.R10, stTagged, asm.Word),
		asm.JNE.Imm(asm.R1, 0, "slow4"),
		asm.JNE.Imm(asm.R2, ipv4Min, "slow4"),
		// The frame ends where the IP packet does (no padding).
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Add.Imm(asm.R1, ethLen),
		asm.Add.Reg(asm.R1, asm.R3),
		asm.JLT.Reg(asm.R1, asm.R8, "slow4"),
	)
	// The header checksum verifies (the worker drops the packet
	// otherwise: ip-bad-csum).
	b.ipv4Sum(asm.R7, asm.R1, asm.R4)
	b.emit(
		asm.JNE.Imm(asm.R1, 0xffff, "slow4"),
		asm.Mov.Imm(asm.R4, 0), // the fragment bits, as on entry
		asm.JEq.Imm(asm.R5, protoTCP, "fast_tcp"),
		asm.JEq.Imm(asm.R5, protoUDP, "fast_udp"),
		asm.Ja.Label("slow4"),
	)
	b.fastProto(protoTCP, "fast_tcp", tcpMinLen, header.TCPChecksumOff)
	b.fastProto(protoUDP, "fast_udp", udpLen, header.UDPChecksumOff)
	b.label("fast_abort")
	b.emit(
		asm.Mov.Imm(asm.R0, xdpAborted),
		asm.Return(),
	)
	b.label("slow4r")
	b.emit(
		asm.Mov.Imm(asm.R4, 0),
		asm.LoadMem(asm.R5, asm.R7, ipv4Proto, asm.Byte),
	)
	b.label("slow4")
}

// fastProto emits the fast path of one protocol, labelled entry: the L4
// header is at least minLen bytes, its checksum at cso.
func (b *builder) fastProto(proto uint8, entry string, minLen, cso int16) {
	p := func(s string) string { return entry + "_" + s }
	udp := proto == protoUDP
	b.label(entry)
	b.needTo(asm.R9, int32(minLen), "slow4")
	// The L4 header's own length fits in the packet, as the worker's
	// parse wants it (header.Parsed: bad-l4-header otherwise).
	if udp {
		b.emit(
			asm.LoadMem(asm.R1, asm.R9, 4, asm.Half),
			asm.HostTo(asm.BE, asm.R1, asm.Half),
			asm.And.Imm(asm.R1, 0xffff),
			asm.JLT.Imm(asm.R1, udpLen, "slow4"),
		)
	} else {
		b.emit(
			asm.LoadMem(asm.R1, asm.R9, tcpFlags, asm.Byte),
			asm.JSet.Imm(asm.R1, header.TCPFlagSYN|header.TCPFlagFIN|header.TCPFlagRST, "slow4"),
			asm.LoadMem(asm.R1, asm.R9, 12, asm.Byte), // data offset
			asm.RSh.Imm(asm.R1, 4),
			asm.LSh.Imm(asm.R1, 2),
			asm.JLT.Imm(asm.R1, tcpMinLen, "slow4"),
		)
	}
	b.emit(
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Reg(asm.R2, asm.R1),
		asm.JGT.Reg(asm.R2, asm.R8, "slow4"),
	)
	b.emit(
		asm.LoadMem(asm.R1, asm.R7, ipv4Src, asm.Word),
		asm.StoreMem(asm.R10, stFastKey, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, ipv4Dst, asm.Word),
		asm.StoreMem(asm.R10, stFastKey+4, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R9, 0, asm.Word),
		asm.StoreMem(asm.R10, stFastKey+8, asm.R1, asm.Word),
		asm.StoreImm(asm.R10, stFastKey+12, 0, asm.Word),
		asm.StoreImm(asm.R10, stFastKey+12, int64(proto), asm.Byte),
	)
	b.lookup(mapFast, stFastKey, "slow4r")
	b.emit(
		// A TTL that would run out: the worker answers with an ICMP error.
		asm.LoadMem(asm.R1, asm.R7, ipv4TTL, asm.Byte),
		asm.JLE.Imm(asm.R1, 1, "slow4r"),
		// Larger than the egress MTU: the worker fragments or refuses.
		asm.LoadMem(asm.R2, asm.R0, fvMTU, asm.Half),
		asm.LoadMem(asm.R3, asm.R7, ipv4TotLen, asm.Half),
		asm.HostTo(asm.BE, asm.R3, asm.Half),
		asm.And.Imm(asm.R3, 0xffff),
		asm.JGT.Reg(asm.R3, asm.R2, "slow4r"),
		// The L4 checksum field: a UDP datagram without a checksum
		// keeps none.
		asm.LoadMem(asm.R1, asm.R9, cso, asm.Half),
	)
	if udp {
		b.emit(asm.JEq.Imm(asm.R1, 0, p("commit")))
	}
	// Just the pseudo-header sum: a checksum left to offload.
	b.emit(
		asm.LoadMem(asm.R2, asm.R7, ipv4Src, asm.Half),
		asm.LoadMem(asm.R4, asm.R7, ipv4Src+2, asm.Half),
		asm.Add.Reg(asm.R2, asm.R4),
		asm.LoadMem(asm.R4, asm.R7, ipv4Dst, asm.Half),
		asm.Add.Reg(asm.R2, asm.R4),
		asm.LoadMem(asm.R4, asm.R7, ipv4Dst+2, asm.Half),
		asm.Add.Reg(asm.R2, asm.R4),
		asm.Mov.Imm(asm.R4, ne16(uint16(proto))),
		asm.And.Imm(asm.R4, 0xffff),
		asm.Add.Reg(asm.R2, asm.R4),
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.Sub.Imm(asm.R4, ipv4Min),
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.And.Imm(asm.R4, 0xffff),
		asm.Add.Reg(asm.R2, asm.R4),
	)
	b.fold(asm.R2, asm.R4)
	b.emit(asm.JEq.Reg(asm.R1, asm.R2, "slow4r"))

	// TUN: an inner packet without DF would need an outer IP ID (the
	// worker's). Room for the outer header: from here on the frame is
	// the fast path's. R9 is then the new frame's start, R7 the inner
	// packet's Ethernet-relative start (R9 + 20), as R7 was.
	b.label(p("commit"))
	b.emit(
		asm.LoadMem(asm.R1, asm.R0, fvMode, asm.Byte),
		asm.And.Imm(asm.R1, fastEncap),
		asm.JEq.Imm(asm.R1, 0, p("count")),
		asm.LoadMem(asm.R1, asm.R7, ipv4Frag, asm.Half),
		asm.And.Imm(asm.R1, ne16(header.IPv4FlagDF)),
		asm.JEq.Imm(asm.R1, 0, "slow4r"),
		asm.StoreMem(asm.R10, stFastVal, asm.R0, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, -ipv4Min),
		asm.FnXdpAdjustHead.Call(),
		asm.JNE.Imm(asm.R0, 0, "fast_abort"),
		asm.LoadMem(asm.R9, asm.R6, mdData, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R7, asm.R9),
		asm.Add.Imm(asm.R7, ipv4Min),
	)
	b.needTo(asm.R7, int32(ethLen+ipv4Min+minLen), "fast_abort")
	b.emit(asm.LoadMem(asm.R0, asm.R10, stFastVal, asm.DWord))
	b.fastCount()
	b.fastTTL()
	b.encapSend()

	// Committed: R6 is the flow's value from here on.
	b.label(p("count"))
	b.fastCount()
	b.emit(
		// The addresses and ports.
		asm.LoadMem(asm.R3, asm.R6, fvMode, asm.Byte),
		asm.Mov.Reg(asm.R1, asm.R3),
		asm.And.Imm(asm.R1, fastSetDst),
		asm.JEq.Imm(asm.R1, 0, p("nodst")),
		asm.LoadMem(asm.R1, asm.R6, fvDstAddr, asm.Word),
		asm.StoreMem(asm.R7, ipv4Dst, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R6, fvDstPort, asm.Half),
		asm.StoreMem(asm.R9, header.L4DstPortOff, asm.R1, asm.Half),
	)
	b.label(p("nodst"))
	b.emit(
		asm.And.Imm(asm.R3, fastSetSrc),
		asm.JEq.Imm(asm.R3, 0, p("rewritten")),
		asm.LoadMem(asm.R1, asm.R6, fvSrcAddr, asm.Word),
		asm.StoreMem(asm.R7, ipv4Src, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R6, fvSrcPort, asm.Half),
		asm.StoreMem(asm.R9, header.L4SrcPortOff, asm.R1, asm.Half),
	)
	b.label(p("rewritten"))
	b.fastTTL()
	b.emit(asm.LoadMem(asm.R1, asm.R9, cso, asm.Half))
	if udp {
		b.emit(asm.JEq.Imm(asm.R1, 0, p("macs")))
	}
	b.csumUpdate(asm.R1, asm.R2, fvL4Adj)
	if udp {
		// A computed UDP checksum of zero is sent as all ones (RFC 768).
		b.emit(
			asm.JNE.Imm(asm.R1, 0, p("l4store")),
			asm.Mov.Imm(asm.R1, 0xffff),
		)
		b.label(p("l4store"))
	}
	b.emit(asm.StoreMem(asm.R9, cso, asm.R1, asm.Half))
	b.label(p("macs"))
	b.macsAndSend(asm.R7)
}

// fastCount makes R6 the flow's value (R0) and counts the packet at R7 in
// it: the time, one packet, its IP bytes.
func (b *builder) fastCount() {
	b.emit(
		asm.Mov.Reg(asm.R6, asm.R0),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.R6, fvLast, asm.R0, asm.DWord),
		asm.LoadMem(asm.R1, asm.R6, fvPackets, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R6, fvPackets, asm.R1, asm.DWord),
		asm.LoadMem(asm.R2, asm.R7, ipv4TotLen, asm.Half),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.And.Imm(asm.R2, 0xffff),
		asm.LoadMem(asm.R1, asm.R6, fvBytes, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.R6, fvBytes, asm.R1, asm.DWord),
	)
}

// fastTTL decrements the TTL of the IPv4 header at R7 (Ethernet-relative)
// and adjusts its checksum by the flow's IPAdj.
func (b *builder) fastTTL() {
	b.emit(
		asm.LoadMem(asm.R1, asm.R7, ipv4TTL, asm.Byte),
		asm.Sub.Imm(asm.R1, 1),
		asm.StoreMem(asm.R7, ipv4TTL, asm.R1, asm.Byte),
		asm.LoadMem(asm.R1, asm.R7, ipv4Csum, asm.Half),
	)
	b.csumUpdate(asm.R1, asm.R2, fvIPAdj)
	b.emit(asm.StoreMem(asm.R7, ipv4Csum, asm.R1, asm.Half))
}

// encapSend writes the Ethernet header and the outer IPv4 header at R9, in
// front of the inner packet (R7 + 14, its TTL decremented by now), and
// sends the frame.
func (b *builder) encapSend() {
	p := b.fresh("encap")
	b.emit(
		asm.Mov.Imm(asm.R1, ne16(header.EtherTypeIPv4)),
		asm.StoreMem(asm.R9, ethType, asm.R1, asm.Half),
		asm.StoreImm(asm.R9, ethLen, 0x45, asm.Byte),
		// TOS: the inner one, CE sent as ECT(0) (RFC 6040).
		asm.LoadMem(asm.R1, asm.R7, ethLen+1, asm.Byte),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.And.Imm(asm.R2, 3),
		asm.JNE.Imm(asm.R2, 3, p),
		asm.Xor.Imm(asm.R1, 1),
	)
	b.label(p)
	b.emit(
		asm.StoreMem(asm.R9, ethLen+1, asm.R1, asm.Byte),
		asm.LoadMem(asm.R1, asm.R7, ipv4TotLen, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.And.Imm(asm.R1, 0xffff),
		asm.Add.Imm(asm.R1, ipv4Min),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.StoreMem(asm.R9, ipv4TotLen, asm.R1, asm.Half),
		asm.StoreImm(asm.R9, ethLen+header.IPv4IDOff, 0, asm.Half),
		asm.StoreImm(asm.R9, ipv4Frag, int64(ne16(header.IPv4FlagDF)), asm.Half),
		asm.LoadMem(asm.R1, asm.R7, ipv4TTL, asm.Byte),
		asm.StoreMem(asm.R9, ipv4TTL, asm.R1, asm.Byte),
		asm.StoreImm(asm.R9, ipv4Proto, header.ProtoIPIP, asm.Byte),
		asm.StoreImm(asm.R9, ipv4Csum, 0, asm.Half),
		asm.LoadMem(asm.R1, asm.R6, fvSrcAddr, asm.Word),
		asm.StoreMem(asm.R9, ipv4Src, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R6, fvDstAddr, asm.Word),
		asm.StoreMem(asm.R9, ipv4Dst, asm.R1, asm.Word),
	)
	b.ipv4Sum(asm.R9, asm.R1, asm.R2)
	b.emit(
		asm.Xor.Imm(asm.R1, 0xffff),
		asm.StoreMem(asm.R9, ipv4Csum, asm.R1, asm.Half),
	)
	b.macsAndSend(asm.R9)
}

// macsAndSend writes the flow's (R6) Ethernet addresses into the frame at
// r and sends it out of the flow's interface.
func (b *builder) macsAndSend(r asm.Register) {
	b.emit(
		asm.LoadMem(asm.R1, asm.R6, fvDstMAC, asm.Word),
		asm.StoreMem(r, 0, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R6, fvDstMAC+4, asm.Half),
		asm.StoreMem(r, 4, asm.R1, asm.Half),
		asm.LoadMem(asm.R1, asm.R6, fvSrcMAC, asm.Word),
		asm.StoreMem(r, 6, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R6, fvSrcMAC+4, asm.Half),
		asm.StoreMem(r, 10, asm.R1, asm.Half),
		asm.LoadMem(asm.R1, asm.R6, fvIfindex, asm.Word),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
	)
}
