package afxdp

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf/asm"

	"github.com/uvs-lb/uvs/header"
	"github.com/uvs-lb/uvs/ownership"
)

// Names of the program and its maps in the kernel (bpftool prog/map show).
const (
	// ProgramName is the name of the XDP program; uvsd --cleanup detaches
	// programs of this name.
	ProgramName = "uvs_xdp"

	mapXSKs  = "uvs_xsks"
	mapAddrs = "uvs_addrs"
	mapPorts = "uvs_ports"
)

// XDP actions and struct xdp_md fields.
const (
	xdpPass     = 2
	xdpRedirect = 4

	mdData         = 0
	mdDataEnd      = 4
	mdRxQueueIndex = 16
)

// Stack layout of the program (offsets from the frame pointer R10).
const (
	stAddrKey  = -16 // addrKey, 16 bytes
	stPortKey  = -40 // portKey, 20 bytes: address, proto +16, kind +17, port +18
	stPorts    = -48 // the L4 header's first word: source port, destination port
	stFrag     = -44 // non-zero for a non-first fragment
	stFlags    = -52 // flags of an ICMP error's destination
	stFragd    = -56 // 1 for a fragment (first or not), classified by addresses and protocol
	stProto    = stPortKey + 16
	stKind     = stPortKey + 17
	stKeyPort  = stPortKey + 18
	stSrcPort  = stPorts
	stDstPort  = stPorts + 2
	maxExtHdrs = ownership.MaxExtHeaders
)

// Frame offsets (untagged Ethernet).
const (
	ethLen     = header.EthernetMinSize
	ethType    = header.EthernetTypeOff
	arpLen     = header.ARPSize
	ipv4Min    = header.IPv4MinSize
	ipv6Len    = header.IPv6Size
	ipv4Ver    = ethLen + header.IPv4VerIHLOff
	ipv4TotLen = ethLen + header.IPv4TotalLenOff
	ipv4Frag   = ethLen + header.IPv4FlagsFragOff
	ipv4Proto  = ethLen + header.IPv4ProtoOff
	ipv4Src    = ethLen + header.IPv4SrcOff
	ipv4Dst    = ethLen + header.IPv4DstOff
	ipv6PayLen = ethLen + header.IPv6PayloadLenOff
	ipv6Next   = ethLen + header.IPv6NextHeaderOff
	ipv6Src    = ethLen + header.IPv6SrcOff
	ipv6Dst    = ethLen + header.IPv6DstOff
	arpHW      = ethLen + header.ARPHTypeOff // htype, ptype
	arpLens    = ethLen + header.ARPHLenOff  // hlen, plen
	arpOp      = ethLen + header.ARPOpOff
	arpTarget  = ethLen + header.ARPTargetIPOff
	icmpHdrLen = header.ICMPv4MinSize
)

// IP protocols and extension headers.
const (
	protoICMP   = header.ProtoICMPv4
	protoTCP    = header.ProtoTCP
	protoUDP    = header.ProtoUDP
	protoSCTP   = header.ProtoSCTP
	protoICMPv6 = header.ProtoICMPv6
	extHopByHop = header.ProtoHopByHop
	extRouting  = header.ProtoRouting
	extFragment = header.ProtoFragment
	extDestOpts = header.ProtoDstOpts
)

// ne16 and ne32 return the value a native-endian load of the big-endian
// bytes of v yields: the constant to compare a loaded header field with.
func ne16(v uint16) int32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return int32(binary.NativeEndian.Uint16(b[:]))
}

func ne32(v uint32) int32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return int32(binary.NativeEndian.Uint32(b[:]))
}

// builder assembles the program with symbolic labels.
type builder struct {
	fast    bool // with the fast path (fast.go)
	insns   asm.Instructions
	pending string
	n       int
}

func (b *builder) emit(ins ...asm.Instruction) {
	for _, in := range ins {
		if b.pending != "" {
			in = in.WithSymbol(b.pending)
			b.pending = ""
		}
		b.insns = append(b.insns, in)
	}
}

// label names the next instruction.
func (b *builder) label(name string) {
	if b.pending != "" {
		// Two labels on one spot: separate them with a no-op jump.
		b.emit(asm.Instruction{OpCode: asm.Ja.Op(asm.ImmSource), Offset: 0})
	}
	b.pending = name
}

// fresh returns a label name not used before.
func (b *builder) fresh(prefix string) string {
	b.n++
	return fmt.Sprintf("%s_%d", prefix, b.n)
}

// need jumps to pass unless ptr+n <= data_end (R8).
func (b *builder) need(ptr asm.Register, n int32) {
	b.emit(
		asm.Mov.Reg(asm.R2, ptr),
		asm.Add.Imm(asm.R2, n),
		asm.JGT.Reg(asm.R2, asm.R8, "pass"),
	)
}

// addr4 writes the IPv4 address at ptr+off, IPv4 mapped, to the stack key
// at base.
func (b *builder) addr4(base int16, ptr asm.Register, off int16) {
	b.emit(
		asm.StoreImm(asm.R10, base, 0, asm.Word),
		asm.StoreImm(asm.R10, base+4, 0, asm.Word),
		asm.StoreImm(asm.R10, base+8, int64(ne32(0x0000ffff)), asm.Word),
		asm.LoadMem(asm.R2, ptr, off, asm.Word),
		asm.StoreMem(asm.R10, base+12, asm.R2, asm.Word),
	)
}

// addr6 copies the IPv6 address at ptr+off to the stack key at base.
func (b *builder) addr6(base int16, ptr asm.Register, off int16) {
	b.emit(
		asm.LoadMem(asm.R2, ptr, off, asm.DWord),
		asm.StoreMem(asm.R10, base, asm.R2, asm.DWord),
		asm.LoadMem(asm.R2, ptr, off+8, asm.DWord),
		asm.StoreMem(asm.R10, base+8, asm.R2, asm.DWord),
	)
}

func (b *builder) addr(v6 bool, base int16, ptr asm.Register, off int16) {
	if v6 {
		b.addr6(base, ptr, off)
	} else {
		b.addr4(base, ptr, off)
	}
}

// lookup looks the stack key at key up in the named map; R0 points to the
// value afterwards, and a miss jumps to miss.
func (b *builder) lookup(m string, key int16, miss string) {
	b.emit(
		asm.LoadMapPtr(asm.R1, 0).WithReference(m),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(key)),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, miss),
	)
}

// flagTest jumps to target if the addrs value R0 points to has any of
// flags (of the IP version v6; see flagShift6).
func (b *builder) flagTest(v6 bool, flags uint32, target string) {
	if v6 {
		flags <<= flagShift6
	}
	b.emit(
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.JSet.Imm(asm.R1, int32(flags), target),
	)
}

// kind stores a port key kind of the IP version v6.
func (b *builder) kind(v6 bool, k uint8) {
	if v6 {
		k |= kindV6
	}
	b.emit(asm.StoreImm(asm.R10, stKind, int64(k), asm.Byte))
}

// l4Proto jumps to pass unless the register holds TCP, UDP or SCTP.
func (b *builder) l4Proto(r asm.Register) {
	ok := b.fresh("l4ok")
	b.emit(
		asm.JEq.Imm(r, protoTCP, ok),
		asm.JEq.Imm(r, protoUDP, ok),
		asm.JNE.Imm(r, protoSCTP, "pass"),
	)
	b.label(ok)
}

// programInstructions returns the XDP program. Its map loads refer to the
// maps by the names mapXSKs, mapAddrs and mapPorts (asm.Instructions
// AssociateMap).
//
// Registers: R6 the context, R7 data, R8 data_end, R9 the L4 header; R0-R5
// are scratch and do not survive helper calls.
func programInstructions(fast bool) asm.Instructions {
	b := &builder{fast: fast}
	b.emit(
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, mdData, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, mdDataEnd, asm.Word),
		// Ports and fragment flags start at zero.
		asm.StoreImm(asm.R10, stPorts, 0, asm.Word),
		asm.StoreImm(asm.R10, stFrag, 0, asm.Word),
		asm.StoreImm(asm.R10, stFragd, 0, asm.Word),
		asm.StoreImm(asm.R10, stTagged, 0, asm.Word),
	)
	b.need(asm.R7, ethLen)
	// One 802.1Q tag: classify what it carries. R7 then points 4 bytes
	// further, so that the untagged frame's offsets (EtherType at 12,
	// network header at 14) read the inner EtherType and packet; nothing
	// after reads the MAC addresses. A NIC with receive VLAN offload has
	// removed the tag before XDP runs (see ownership's documentation).
	b.emit(
		asm.LoadMem(asm.R2, asm.R7, ethType, asm.Half),
		asm.JNE.Imm(asm.R2, ne16(header.EtherTypeVLAN), "untagged"),
	)
	b.need(asm.R7, header.EthernetVLANSize)
	b.emit(
		asm.StoreImm(asm.R10, stTagged, 1, asm.Word),
		asm.Add.Imm(asm.R7, header.EthernetVLANSize-ethLen),
	)
	b.label("untagged")
	b.emit(
		asm.LoadMem(asm.R2, asm.R7, ethType, asm.Half),
		asm.JEq.Imm(asm.R2, ne16(0x0800), "ipv4"),
		asm.JEq.Imm(asm.R2, ne16(0x86dd), "ipv6"),
		asm.JNE.Imm(asm.R2, ne16(0x0806), "pass"),
	)

	// ARP: an Ethernet/IPv4 request for an address uvsd answers for.
	b.need(asm.R7, ethLen+arpLen)
	b.emit(
		asm.LoadMem(asm.R2, asm.R7, arpHW, asm.Word),
		asm.JNE.Imm32(asm.R2, ne32(0x00010800), "pass"),
		asm.LoadMem(asm.R2, asm.R7, arpLens, asm.Half),
		asm.JNE.Imm(asm.R2, ne16(0x0604), "pass"),
		asm.LoadMem(asm.R2, asm.R7, arpOp, asm.Half),
		asm.JNE.Imm(asm.R2, ne16(1), "pass"),
	)
	b.addr4(stAddrKey, asm.R7, arpTarget)
	b.lookup(mapAddrs, stAddrKey, "pass")
	b.flagTest(false, flagNeigh, "redirect")
	b.emit(asm.Ja.Label("pass"))

	b.ipv4()
	b.ipv6()

	b.label("redirect")
	b.emit(
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapXSKs),
		asm.LoadMem(asm.R2, asm.R6, mdRxQueueIndex, asm.Word),
		asm.Mov.Imm(asm.R3, xdpPass), // no socket on this queue: pass
		asm.FnRedirectMap.Call(),
		asm.Return(),
	)
	b.label("pass")
	b.emit(
		asm.Mov.Imm(asm.R0, xdpPass),
		asm.Return(),
	)
	return b.insns
}

// ipv4 emits the IPv4 section, labelled "ipv4": the header must be valid
// as nf_tables sees it (ownership's package documentation).
func (b *builder) ipv4() {
	b.label("ipv4")
	b.need(asm.R7, ethLen+ipv4Min)
	b.emit(
		asm.LoadMem(asm.R2, asm.R7, ipv4Ver, asm.Byte),
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.And.Imm(asm.R3, 0xf0),
		asm.JNE.Imm(asm.R3, 0x40, "pass"),
		asm.And.Imm(asm.R2, 0x0f),
		asm.LSh.Imm(asm.R2, 2),
		asm.JLT.Imm(asm.R2, ipv4Min, "pass"),
		// The total length covers the header and fits in the frame.
		asm.LoadMem(asm.R3, asm.R7, ipv4TotLen, asm.Half),
		asm.HostTo(asm.BE, asm.R3, asm.Half),
		asm.And.Imm(asm.R3, 0xffff),
		asm.JLT.Reg(asm.R3, asm.R2, "pass"),
		asm.Mov.Reg(asm.R4, asm.R7),
		asm.Add.Imm(asm.R4, ethLen),
		asm.Add.Reg(asm.R4, asm.R3),
		asm.JGT.Reg(asm.R4, asm.R8, "pass"),
		asm.Mov.Reg(asm.R9, asm.R7),
		asm.Add.Imm(asm.R9, ethLen),
		asm.Add.Reg(asm.R9, asm.R2),
		// A fragment: MF or a fragment offset.
		asm.LoadMem(asm.R4, asm.R7, ipv4Frag, asm.Half),
		asm.And.Imm(asm.R4, ne16(header.IPv4FlagMF|header.IPv4FragOffMask)),
		asm.StoreMem(asm.R10, stFrag, asm.R4, asm.Word),
		asm.JEq.Imm(asm.R4, 0, "whole4"),
		asm.StoreImm(asm.R10, stFragd, 1, asm.Word),
	)
	b.label("whole4")
	b.emit(asm.LoadMem(asm.R5, asm.R7, ipv4Proto, asm.Byte))
	if b.fast {
		b.fast4()
	}
	b.emit(
		asm.StoreMem(asm.R10, stProto, asm.R5, asm.Byte),
		asm.JEq.Imm(asm.R5, protoICMP, "icmp4"),
	)
	b.l4(false)

	b.label("icmp4")
	b.emit(asm.JNE.Imm(asm.R4, 0, "icmpfrag4"))
	b.need(asm.R9, icmpHdrLen)
	b.emit(
		asm.LoadMem(asm.R2, asm.R9, 0, asm.Byte),
		asm.JEq.Imm(asm.R2, header.ICMPv4DestUnreachable, "icmperr4"),
		asm.JEq.Imm(asm.R2, header.ICMPv4SourceQuench, "icmperr4"),
		asm.JEq.Imm(asm.R2, header.ICMPv4TimeExceeded, "icmperr4"),
		asm.JNE.Imm(asm.R2, header.ICMPv4ParamProblem, "pass"),
	)
	b.label("icmperr4")
	b.icmpError(false)

	b.label("icmpfrag4")
	b.icmpFragment(false)
}

// icmpFragment emits the check of an ICMP fragment: it is uvsd's when
// addressed to a VIP.
func (b *builder) icmpFragment(v6 bool) {
	dstOff := int16(ipv4Dst)
	if v6 {
		dstOff = ipv6Dst
	}
	b.addr(v6, stAddrKey, asm.R7, dstOff)
	b.lookup(mapAddrs, stAddrKey, "pass")
	b.flagTest(v6, flagVIP, "redirect")
	b.emit(asm.Ja.Label("pass"))
}

// ipv6 emits the IPv6 section, labelled "ipv6": the payload length must
// fit in the frame, and the transport header is found as ipv6_find_hdr
// finds it (ownership's package documentation).
func (b *builder) ipv6() {
	b.label("ipv6")
	b.need(asm.R7, ethLen+ipv6Len)
	b.emit(
		asm.LoadMem(asm.R2, asm.R7, ethLen, asm.Byte),
		asm.And.Imm(asm.R2, 0xf0),
		asm.JNE.Imm(asm.R2, 0x60, "pass"),
		asm.LoadMem(asm.R3, asm.R7, ipv6PayLen, asm.Half),
		asm.HostTo(asm.BE, asm.R3, asm.Half),
		asm.And.Imm(asm.R3, 0xffff),
		asm.Mov.Reg(asm.R4, asm.R7),
		asm.Add.Imm(asm.R4, ethLen+ipv6Len),
		asm.Add.Reg(asm.R4, asm.R3),
		asm.JGT.Reg(asm.R4, asm.R8, "pass"),
		asm.LoadMem(asm.R5, asm.R7, ipv6Next, asm.Byte),
		asm.Mov.Reg(asm.R9, asm.R7),
		asm.Add.Imm(asm.R9, ethLen+ipv6Len),
		asm.Mov.Imm(asm.R4, 0),
		asm.Mov.Imm(asm.R3, 0),
	)
	// Walk up to maxExtHdrs extension headers; R5 is the next header, R4
	// is set for a non-first fragment, whose header ends the walk; R3 is
	// what the first fragment header says: 1 a fragment (an offset or the
	// M flag), 2 a whole packet (an atomic fragment), 0 no such header.
	for range maxExtHdrs {
		ext, rt, frag, nonFirst, next := b.fresh("ext"), b.fresh("rt"), b.fresh("frag"), b.fresh("nonfirst"), b.fresh("next")
		isFrag, decided := b.fresh("isfrag"), b.fresh("decided")
		b.emit(
			asm.JEq.Imm(asm.R5, extHopByHop, ext),
			asm.JEq.Imm(asm.R5, extDestOpts, ext),
			asm.JEq.Imm(asm.R5, extRouting, rt),
			asm.JEq.Imm(asm.R5, extFragment, frag),
			asm.Ja.Label("exts_done"),
		)
		// struct ipv6_rt_hdr: 4 bytes.
		b.label(rt)
		b.need(asm.R9, 4)
		b.label(ext)
		b.need(asm.R9, 2)
		b.emit(
			asm.LoadMem(asm.R5, asm.R9, 0, asm.Byte),
			asm.LoadMem(asm.R2, asm.R9, 1, asm.Byte),
			asm.Add.Imm(asm.R2, 1),
			asm.LSh.Imm(asm.R2, 3),
			asm.Add.Reg(asm.R9, asm.R2),
			asm.Ja.Label(next),
		)
		b.label(frag)
		b.need(asm.R9, header.IPv6FragOffOff+2)
		b.emit(
			asm.LoadMem(asm.R5, asm.R9, 0, asm.Byte),
			asm.LoadMem(asm.R2, asm.R9, header.IPv6FragOffOff, asm.Half),
			asm.JNE.Imm(asm.R3, 0, decided),
			asm.Mov.Imm(asm.R3, 2),
			asm.JSet.Imm(asm.R2, ne16(header.IPv6FragOffMask|ipv6FragMore), isFrag),
			asm.Ja.Label(decided),
		)
		b.label(isFrag)
		b.emit(asm.Mov.Imm(asm.R3, 1))
		b.label(decided)
		b.emit(
			asm.And.Imm(asm.R2, ne16(header.IPv6FragOffMask)),
			asm.JNE.Imm(asm.R2, 0, nonFirst),
			asm.Add.Imm(asm.R9, header.IPv6FragSize),
			asm.Ja.Label(next),
		)
		b.label(nonFirst)
		b.emit(
			asm.Mov.Imm(asm.R4, 1),
			asm.Ja.Label("exts_done"),
		)
		b.label(next)
	}
	// Still an extension header: too many to walk.
	b.emit(
		asm.JEq.Imm(asm.R5, extHopByHop, "pass"),
		asm.JEq.Imm(asm.R5, extRouting, "pass"),
		asm.JEq.Imm(asm.R5, extDestOpts, "pass"),
		asm.JEq.Imm(asm.R5, extFragment, "pass"),
	)
	b.label("exts_done")
	b.emit(
		asm.JNE.Imm(asm.R3, 1, "whole6"),
		asm.StoreImm(asm.R10, stFragd, 1, asm.Word),
	)
	b.label("whole6")
	b.emit(
		asm.StoreMem(asm.R10, stFrag, asm.R4, asm.Word),
		asm.StoreMem(asm.R10, stProto, asm.R5, asm.Byte),
		asm.JEq.Imm(asm.R5, protoICMPv6, "icmp6"),
	)
	b.l4(true)

	b.label("icmp6")
	b.emit(
		asm.JEq.Imm(asm.R3, 1, "icmpfrag6"),
		asm.JNE.Imm(asm.R4, 0, "pass"),
	)
	b.need(asm.R9, icmpHdrLen)
	b.emit(
		asm.LoadMem(asm.R2, asm.R9, 0, asm.Byte),
		asm.JEq.Imm(asm.R2, header.ICMPv6NeighborSolicit, "ns"),
		asm.JLT.Imm(asm.R2, header.ICMPv6DestUnreachable, "pass"),
		asm.JGT.Imm(asm.R2, header.ICMPv6ParamProblem, "pass"),
	)
	b.icmpError(true)

	// Neighbour solicitation: the target follows the 8-byte header.
	b.label("ns")
	b.need(asm.R9, icmpHdrLen+16)
	b.addr6(stAddrKey, asm.R9, icmpHdrLen)
	b.lookup(mapAddrs, stAddrKey, "pass")
	b.flagTest(true, flagNeigh, "redirect")
	b.emit(asm.Ja.Label("pass"))

	b.label("icmpfrag6")
	b.icmpFragment(true)
}

// l4 emits the TCP/UDP/SCTP lookups. On entry R5 holds the protocol (also
// stored in the port key), R9 points to the L4 header (which may be
// missing) and the fragment flag is on the stack.
func (b *builder) l4(v6 bool) {
	srcOff, dstOff := int16(ipv4Src), int16(ipv4Dst)
	if v6 {
		srcOff, dstOff = ipv6Src, ipv6Dst
	}
	withPort, notRange, natReply := b.fresh("withport"), b.fresh("notrange"), b.fresh("natreply")
	natAny, natOK, frag, fragNAT := b.fresh("natany"), b.fresh("natok"), b.fresh("frag"), b.fresh("fragnat")
	b.l4Proto(asm.R5)
	b.emit(
		asm.LoadMem(asm.R2, asm.R10, stFragd, asm.Word),
		asm.JNE.Imm(asm.R2, 0, frag),
	)
	// A service on every port: any fragment, the ports need not be there.
	b.addr(v6, stPortKey, asm.R7, dstOff)
	b.kind(v6, kindService)
	b.emit(asm.StoreImm(asm.R10, stKeyPort, 0, asm.Half))
	b.lookup(mapPorts, stPortKey, withPort)
	b.emit(asm.Ja.Label("redirect"))

	b.label(withPort)
	b.emit(
		asm.LoadMem(asm.R4, asm.R10, stFrag, asm.Word),
		asm.JNE.Imm(asm.R4, 0, "pass"),
	)
	b.need(asm.R9, 4)
	b.emit(
		asm.LoadMem(asm.R2, asm.R9, 0, asm.Word),
		asm.StoreMem(asm.R10, stPorts, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R10, stDstPort, asm.Half),
		asm.StoreMem(asm.R10, stKeyPort, asm.R2, asm.Half),
	)
	// A service on the destination port.
	b.lookup(mapPorts, stPortKey, notRange)
	b.emit(asm.Ja.Label("redirect"))
	// A FULLNAT local address: the destination port within its range.
	b.label(notRange)
	b.kind(v6, kindLocalRange)
	b.emit(asm.StoreImm(asm.R10, stKeyPort, 0, asm.Half))
	b.lookup(mapPorts, stPortKey, natReply)
	b.inRange(stDstPort, natReply)
	b.emit(asm.Ja.Label("redirect"))
	// A NAT reply: from a real server's port, not to a director address.
	b.label(natReply)
	b.addr(v6, stPortKey, asm.R7, srcOff)
	b.kind(v6, kindNATReply)
	b.emit(
		asm.LoadMem(asm.R2, asm.R10, stSrcPort, asm.Half),
		asm.StoreMem(asm.R10, stKeyPort, asm.R2, asm.Half),
	)
	b.lookup(mapPorts, stPortKey, natAny)
	b.emit(asm.Ja.Label(natOK))
	// Or from any port of a real server of a port-0 NAT service.
	b.label(natAny)
	b.emit(asm.StoreImm(asm.R10, stKeyPort, 0, asm.Half))
	b.lookup(mapPorts, stPortKey, "pass")
	b.label(natOK)
	b.notLocal(v6, dstOff)

	// A fragment, first or not: to a service's or a local range's
	// address with its protocol, or from a NAT real server's address
	// with its protocol and not to a director address.
	b.label(frag)
	b.addr(v6, stPortKey, asm.R7, dstOff)
	b.kind(v6, kindFragDst)
	b.emit(asm.StoreImm(asm.R10, stKeyPort, 0, asm.Half))
	b.lookup(mapPorts, stPortKey, fragNAT)
	b.emit(asm.Ja.Label("redirect"))
	b.label(fragNAT)
	b.addr(v6, stPortKey, asm.R7, srcOff)
	b.kind(v6, kindFragSrc)
	b.lookup(mapPorts, stPortKey, "pass")
	b.notLocal(v6, dstOff)
}

// notLocal redirects the frame unless its destination (at dstOff) is a
// director address.
func (b *builder) notLocal(v6 bool, dstOff int16) {
	b.addr(v6, stAddrKey, asm.R7, dstOff)
	b.lookup(mapAddrs, stAddrKey, "redirect")
	b.flagTest(v6, flagLocal, "pass")
	b.emit(asm.Ja.Label("redirect"))
}

// inRange jumps to miss unless the port on the stack at port (network
// order) is within the local range R0 points to.
func (b *builder) inRange(port int16, miss string) {
	b.emit(
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.LoadMem(asm.R2, asm.R10, port, asm.Half),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.And.Imm(asm.R2, 0xffff),
		asm.Mov.Reg(asm.R3, asm.R1),
		asm.And.Imm(asm.R3, 0xffff),
		asm.JLT.Reg(asm.R2, asm.R3, miss),
		asm.RSh.Imm(asm.R1, 16),
		asm.JGT.Reg(asm.R2, asm.R1, miss),
	)
}

// icmpError emits the ICMP error checks; R9 points to the ICMP header,
// which is known to be at least 8 bytes long.
func (b *builder) icmpError(v6 bool) {
	dstOff := int16(ipv4Dst)
	if v6 {
		dstOff = ipv6Dst
	}
	quoted, fullnatDone := b.fresh("quoted"), b.fresh("fullnatdone")
	// Addressed to a VIP: redirect. Keep the destination's flags for
	// the director-address test below.
	b.emit(asm.StoreImm(asm.R10, stFlags, 0, asm.Word))
	b.addr(v6, stAddrKey, asm.R7, dstOff)
	b.lookup(mapAddrs, stAddrKey, quoted)
	b.flagTest(v6, flagVIP, "redirect")
	b.emit(asm.StoreMem(asm.R10, stFlags, asm.R1, asm.Word))

	// The quoted packet: its IP header, protocol and ports; whether it
	// was sent from the error's destination.
	b.label(quoted)
	if v6 {
		const q = icmpHdrLen
		b.need(asm.R9, q+ipv6Len+4)
		b.emit(
			asm.LoadMem(asm.R2, asm.R9, q, asm.Byte),
			asm.And.Imm(asm.R2, 0xf0),
			asm.JNE.Imm(asm.R2, 0x60, "pass"),
			asm.LoadMem(asm.R5, asm.R9, q+header.IPv6NextHeaderOff, asm.Byte),
		)
		b.l4Proto(asm.R5)
		b.emit(
			asm.StoreMem(asm.R10, stProto, asm.R5, asm.Byte),
			asm.LoadMem(asm.R2, asm.R9, q+ipv6Len, asm.Word),
			asm.StoreMem(asm.R10, stPorts, asm.R2, asm.Word),
		)
		for w := int16(0); w < 16; w += 8 {
			b.emit(
				asm.LoadMem(asm.R2, asm.R9, q+header.IPv6SrcOff+w, asm.DWord),
				asm.LoadMem(asm.R3, asm.R7, dstOff+w, asm.DWord),
				asm.JNE.Reg(asm.R2, asm.R3, fullnatDone),
			)
		}
	} else {
		const q = icmpHdrLen
		b.need(asm.R9, q+ipv4Min)
		b.emit(
			asm.LoadMem(asm.R2, asm.R9, q, asm.Byte),
			asm.Mov.Reg(asm.R3, asm.R2),
			asm.And.Imm(asm.R3, 0xf0),
			asm.JNE.Imm(asm.R3, 0x40, "pass"),
			asm.And.Imm(asm.R2, 0x0f),
			asm.LSh.Imm(asm.R2, 2),
			asm.JLT.Imm(asm.R2, ipv4Min, "pass"),
		)
		b.tunnelQuoted()
		b.emit(
			asm.LoadMem(asm.R2, asm.R9, q, asm.Byte),
			asm.And.Imm(asm.R2, 0x0f),
			asm.LSh.Imm(asm.R2, 2),
			asm.LoadMem(asm.R5, asm.R9, q+header.IPv4ProtoOff, asm.Byte),
		)
		b.l4Proto(asm.R5)
		b.emit(
			asm.StoreMem(asm.R10, stProto, asm.R5, asm.Byte),
			asm.Mov.Reg(asm.R3, asm.R9),
			asm.Add.Imm(asm.R3, q),
			asm.Add.Reg(asm.R3, asm.R2), // the quoted L4 header
			asm.Mov.Reg(asm.R2, asm.R3),
			asm.Add.Imm(asm.R2, 4),
			asm.JGT.Reg(asm.R2, asm.R8, "pass"),
			asm.LoadMem(asm.R2, asm.R3, 0, asm.Word),
			asm.StoreMem(asm.R10, stPorts, asm.R2, asm.Word),
			asm.LoadMem(asm.R2, asm.R9, q+header.IPv4SrcOff, asm.Word),
			asm.LoadMem(asm.R3, asm.R7, dstOff, asm.Word),
			asm.JNE.Reg(asm.R2, asm.R3, fullnatDone),
		)
	}
	// About a FULLNAT connection: sent from the error's destination, a
	// local address, from a port of its range.
	b.addr(v6, stPortKey, asm.R7, dstOff)
	b.kind(v6, kindLocalRange)
	b.emit(asm.StoreImm(asm.R10, stKeyPort, 0, asm.Half))
	b.lookup(mapPorts, stPortKey, fullnatDone)
	b.inRange(stSrcPort, fullnatDone)
	b.emit(asm.Ja.Label("redirect"))

	// About a NAT connection: the quoted packet went to a real server's
	// NAT port (its reply would be a NAT reply), and the error is not
	// addressed to a director address.
	b.label(fullnatDone)
	local := flagLocal
	if v6 {
		local <<= flagShift6
	}
	b.emit(
		asm.LoadMem(asm.R1, asm.R10, stFlags, asm.Word),
		asm.JSet.Imm(asm.R1, int32(local), "pass"),
	)
	if v6 {
		b.addr6(stPortKey, asm.R9, icmpHdrLen+header.IPv6DstOff)
	} else {
		b.addr4(stPortKey, asm.R9, icmpHdrLen+header.IPv4DstOff)
	}
	b.kind(v6, kindNATReply)
	b.emit(
		asm.LoadMem(asm.R2, asm.R10, stDstPort, asm.Half),
		asm.StoreMem(asm.R10, stKeyPort, asm.R2, asm.Half),
	)
	natAny := b.fresh("icmpnatany")
	b.lookup(mapPorts, stPortKey, natAny)
	b.emit(asm.Ja.Label("redirect"))
	// Or to any port of a real server of a port-0 NAT service.
	b.label(natAny)
	b.emit(asm.StoreImm(asm.R10, stKeyPort, 0, asm.Half))
	b.lookup(mapPorts, stPortKey, "pass")
	b.emit(asm.Ja.Label("redirect"))
}

// tunnelQuoted emits the check of an ICMPv4 error about the director's own
// tunnelled packet (ip_vs_in_icmp): addressed to a director address (its
// flags are on the stack), quoting an IPv4 header sent from there to a TUN
// real server with its outer protocol and, for GUE, its port. On entry R9
// points to the ICMP header, R2 holds the quoted header's length (checked)
// and the quoted header is within the packet; a miss goes on after it,
// with R0-R5 clobbered.
func (b *builder) tunnelQuoted() {
	const q = icmpHdrLen
	local, done, gue, keyed := b.fresh("tunlocal"), b.fresh("tundone"), b.fresh("tungue"), b.fresh("tunkeyed")
	b.emit(
		asm.LoadMem(asm.R1, asm.R10, stFlags, asm.Word),
		asm.JSet.Imm(asm.R1, int32(flagLocal), local),
		asm.Ja.Label(done),
	)
	b.label(local)
	b.emit(
		asm.LoadMem(asm.R3, asm.R9, q+header.IPv4SrcOff, asm.Word),
		asm.LoadMem(asm.R4, asm.R7, ipv4Dst, asm.Word),
		asm.JNE.Reg(asm.R3, asm.R4, done),
		// The four bytes after the quoted header must be there, as for
		// every quoted packet (a GUE packet's ports).
		asm.Mov.Reg(asm.R3, asm.R9),
		asm.Add.Imm(asm.R3, q),
		asm.Add.Reg(asm.R3, asm.R2),
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.Add.Imm(asm.R4, 4),
		asm.JGT.Reg(asm.R4, asm.R8, "pass"),
		asm.LoadMem(asm.R5, asm.R9, q+header.IPv4ProtoOff, asm.Byte),
		asm.StoreMem(asm.R10, stProto, asm.R5, asm.Byte),
		asm.StoreImm(asm.R10, stKind, kindTunnel, asm.Byte),
		asm.StoreImm(asm.R10, stKeyPort, 0, asm.Half),
		asm.JEq.Imm(asm.R5, protoUDP, gue),
		asm.Ja.Label(keyed),
	)
	b.label(gue)
	b.emit(
		asm.LoadMem(asm.R4, asm.R3, header.L4DstPortOff, asm.Half),
		asm.StoreMem(asm.R10, stKeyPort, asm.R4, asm.Half),
	)
	b.label(keyed)
	b.addr4(stPortKey, asm.R9, q+header.IPv4DstOff)
	b.lookup(mapPorts, stPortKey, done)
	b.emit(asm.Ja.Label("redirect"))
	b.label(done)
}

// ipv6FragMore is the M flag of the IPv6 fragment header's offset field.
const ipv6FragMore = 0x0001
