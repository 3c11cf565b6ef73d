// Package bpfdecap is the real server's in-kernel IPIP decapsulation: a tc
// ingress BPF program that strips the outer IPv4 header of an IPIP packet
// sent to one of the host's addresses whose inner packet is addressed to a
// VIP, and lets the inner packet go on into the host's own stack as if it
// had arrived without a tunnel — what the ipip module's tunl0 does, on
// hosts without it. Every packet it does not take (fragments, IP options,
// outer CE, GRE, IPv6, another destination, a bad outer header checksum,
// anything else) goes on unchanged to the kernel and so to uvs-rs's
// user-space decapsulator, which judges and counts it.
//
// It runs at tc ingress (tcx), after GRO: on any Ethernet device, without
// driver support, and on a veth without the copy into an XDP buffer that
// native XDP costs there. GRO may have merged tunnelled TCP segments into
// one IPIP super-packet; bpf_skb_adjust_room strips its outer header too,
// keeping the segment size (BPF_F_ADJ_ROOM_FIXED_GSO), and the packet is
// delivered locally, never segmented again.
package bpfdecap

import (
	"encoding/binary"

	"github.com/cilium/ebpf/asm"

	"github.com/uvs-lb/uvs/header"
)

// Names of the program and its maps in the kernel (bpftool prog/map show).
const (
	ProgramName = "uvs_rs_decap"
	mapAddrs    = "uvs_rs_addrs"
	mapStats    = "uvs_rs_stats"
)

// Flags of an address in the addresses map.
const (
	FlagLocal = 1 // an address of this host: an outer destination it accepts
	FlagVIP   = 2 // a VIP: an inner destination it accepts
)

// tc verdict, struct __sk_buff fields and helper arguments.
const (
	tcxNext      = -1 // TCX_NEXT: the next program, or the stack
	skbLen       = 0
	skbData      = 76
	skbDataEnd   = 80
	adjRoomMAC   = 1      // BPF_ADJ_ROOM_MAC: remove bytes after the MAC header
	adjFixedGSO  = 1 << 0 // BPF_F_ADJ_ROOM_FIXED_GSO: keep gso_size
	adjNoCsumRst = 1 << 5 // BPF_F_ADJ_ROOM_NO_CSUM_RESET
)

// Frame offsets: untagged Ethernet, an outer IPv4 header without options,
// the inner IPv4 header right after it.
const (
	ethLen    = header.EthernetMinSize
	outer     = ethLen
	inner     = outer + header.IPv4MinSize
	minFrame  = inner + header.IPv4MinSize
	outerTOS  = outer + 1
	outerLen  = outer + header.IPv4TotalLenOff
	outerFrag = outer + header.IPv4FlagsFragOff
	outerProt = outer + header.IPv4ProtoOff
	outerDst  = outer + header.IPv4DstOff
	innerLen  = inner + header.IPv4TotalLenOff
	innerDst  = inner + header.IPv4DstOff
	protoIPIP = 4
	verIHL5   = 0x45 // IPv4, 20-byte header
	ecnCE     = 3
)

// Stack layout (offsets from R10).
const (
	stKey   = -4 // address key
	stBytes = -8 // the inner packet's length
	stIndex = -12
)

// ne16 returns what a native-endian load of the big-endian bytes of v
// yields: the constant to compare a loaded header field with.
func ne16(v uint16) int32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return int32(binary.NativeEndian.Uint16(b[:]))
}

// instructions returns the program. R6 holds the context, R7 the packet's
// start and R8 the end of its linear part.
func instructions() asm.Instructions {
	loadPtrs := asm.Instructions{
		asm.LoadMem(asm.R7, asm.R6, skbData, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, skbDataEnd, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, minFrame),
	}
	lookup := func(off int16, flag int32) asm.Instructions {
		return asm.Instructions{
			asm.LoadMem(asm.R3, asm.R7, off, asm.Word),
			asm.StoreMem(asm.R10, stKey, asm.R3, asm.Word),
			asm.LoadMapPtr(asm.R1, 0).WithReference(mapAddrs),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, stKey),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "pass"),
			asm.LoadMem(asm.R3, asm.R0, 0, asm.Word),
			asm.And.Imm(asm.R3, flag),
			asm.JEq.Imm(asm.R3, 0, "pass"),
		}
	}
	insns := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
	// The headers must be in the linear part; pull them in if they are not.
	insns = append(insns, loadPtrs...)
	insns = append(insns,
		asm.JLE.Reg(asm.R2, asm.R8, "linear"),
		asm.LoadMem(asm.R3, asm.R6, skbLen, asm.Word),
		asm.JLT.Imm(asm.R3, minFrame, "pass"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, minFrame),
		asm.FnSkbPullData.Call(),
		asm.JNE.Imm(asm.R0, 0, "pass"),
	)
	insns = append(insns, loadPtrs...)
	insns = append(insns,
		asm.JGT.Reg(asm.R2, asm.R8, "pass"),
		// Untagged IPv4, no options, IPIP, not a fragment, outer ECN not
		// CE (RFC 6040 decapsulation is the user-space path's), inner
		// IPv4 without options.
		asm.LoadMem(asm.R3, asm.R7, header.EthernetTypeOff, asm.Half).WithSymbol("linear"),
		asm.JNE.Imm(asm.R3, ne16(header.EtherTypeIPv4), "pass"),
		asm.LoadMem(asm.R3, asm.R7, outer, asm.Byte),
		asm.JNE.Imm(asm.R3, verIHL5, "pass"),
		asm.LoadMem(asm.R3, asm.R7, outerProt, asm.Byte),
		asm.JNE.Imm(asm.R3, protoIPIP, "pass"),
		asm.LoadMem(asm.R3, asm.R7, outerFrag, asm.Half),
		asm.And.Imm(asm.R3, ne16(0x3fff)),
		asm.JNE.Imm(asm.R3, 0, "pass"),
		asm.LoadMem(asm.R3, asm.R7, outerTOS, asm.Byte),
		asm.And.Imm(asm.R3, 3),
		asm.JEq.Imm(asm.R3, ecnCE, "pass"),
		asm.LoadMem(asm.R3, asm.R7, inner, asm.Byte),
		asm.JNE.Imm(asm.R3, verIHL5, "pass"),
		// 40 <= outer length <= the packet's length after the Ethernet
		// header; 20 <= inner length <= outer length - 20. Trailing bytes
		// (Ethernet padding) stay: ip_rcv trims the packet to the inner
		// header's length.
		asm.LoadMem(asm.R3, asm.R7, outerLen, asm.Half),
		asm.HostTo(asm.BE, asm.R3, asm.Half),
		asm.JLT.Imm(asm.R3, 2*header.IPv4MinSize, "pass"),
		asm.LoadMem(asm.R4, asm.R6, skbLen, asm.Word),
		asm.Sub.Imm(asm.R4, ethLen),
		asm.JGT.Reg(asm.R3, asm.R4, "pass"),
		asm.LoadMem(asm.R5, asm.R7, innerLen, asm.Half),
		asm.HostTo(asm.BE, asm.R5, asm.Half),
		asm.JLT.Imm(asm.R5, header.IPv4MinSize, "pass"),
		asm.Sub.Imm(asm.R3, header.IPv4MinSize),
		asm.JGT.Reg(asm.R5, asm.R3, "pass"),
		asm.StoreMem(asm.R10, stBytes, asm.R5, asm.Word),
	)
	// The outer header's checksum: the kernel drops a packet whose header
	// does not verify (ip_rcv_core) before anything decapsulates it. The
	// ones' complement sum of the ten words is 0xffff in either byte order.
	insns = append(insns, asm.Mov.Imm(asm.R3, 0))
	for i := int16(0); i < header.IPv4MinSize; i += 2 {
		insns = append(insns,
			asm.LoadMem(asm.R4, asm.R7, outer+i, asm.Half),
			asm.Add.Reg(asm.R3, asm.R4))
	}
	for range 2 {
		insns = append(insns,
			asm.Mov.Reg(asm.R4, asm.R3),
			asm.RSh.Imm(asm.R4, 16),
			asm.And.Imm(asm.R3, 0xffff),
			asm.Add.Reg(asm.R3, asm.R4))
	}
	insns = append(insns, asm.JNE.Imm(asm.R3, 0xffff, "pass"))
	// The outer destination is this host's, the inner one a VIP.
	insns = append(insns, lookup(outerDst, FlagLocal)...)
	insns = append(insns, lookup(innerDst, FlagVIP)...)
	// Remove the outer header (the helper moves the MAC header up to the
	// inner one). The inner packet's checksum state stays as received:
	// the outer header is not part of any L4 checksum.
	insns = append(insns,
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, -header.IPv4MinSize),
		asm.Mov.Imm(asm.R3, adjRoomMAC),
		asm.Mov.Imm(asm.R4, adjFixedGSO|adjNoCsumRst),
		asm.FnSkbAdjustRoom.Call(),
		asm.JNE.Imm(asm.R0, 0, "pass"),
		// Count it (per CPU: packets, inner bytes).
		asm.StoreImm(asm.R10, stIndex, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapStats),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stIndex),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R3, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R3, 1),
		asm.StoreMem(asm.R0, 0, asm.R3, asm.DWord),
		asm.LoadMem(asm.R3, asm.R0, 8, asm.DWord),
		asm.LoadMem(asm.R4, asm.R10, stBytes, asm.Word),
		asm.Add.Reg(asm.R3, asm.R4),
		asm.StoreMem(asm.R0, 8, asm.R3, asm.DWord),
		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol("pass"),
		asm.Return(),
	)
	return insns
}
