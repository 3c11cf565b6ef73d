package afpacket

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"
)

// FilterSpec lists what a director owns; OwnedFilter turns it into a classic
// BPF program for Config.Filter or Socket.SetFilter.
type FilterSpec struct {
	// VIPs are the virtual service addresses: frames destined to them are
	// accepted (all protocols, all ports).
	VIPs []netip.Addr
	// RealServers are the destination addresses whose replies the director
	// translates (NAT, FULLNAT): frames sourced from them are accepted.
	RealServers []netip.Addr
	// LocalAddrs are the director's own FULLNAT local addresses: frames
	// destined to them (the real servers' replies) are accepted.
	LocalAddrs []netip.Addr
	// ARP accepts every ARP frame.
	ARP bool
	// NDP accepts IPv6 neighbour solicitations and advertisements (ICMPv6
	// types 135 and 136) whatever their addresses.
	NDP bool
}

// Offsets into an untagged Ethernet frame.
const (
	offEtherType = 12
	offIPv4      = 14
	offIPv4Proto = offIPv4 + 9
	offIPv4Frag  = offIPv4 + 6
	offIPv4Src   = offIPv4 + 12
	offIPv4Dst   = offIPv4 + 16
	offIPv6      = 14
	offIPv6Next  = offIPv6 + 6
	offIPv6Src   = offIPv6 + 8
	offIPv6Dst   = offIPv6 + 24
	offICMPv6    = offIPv6 + 40

	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd

	protoICMP   = 1
	protoICMPv6 = 58

	// acceptLen is the snap length an accepting program returns: larger
	// than any frame, so frames are never truncated.
	acceptLen = 0x40000

	// maxFilterLen is the kernel's BPF_MAXINSNS.
	maxFilterLen = 4096
)

// ErrFilterTooLong is returned by OwnedFilter when the spec needs more than
// the kernel's 4096 classic BPF instructions (roughly 450 IPv6 or 2000 IPv4
// addresses).
var ErrFilterTooLong = errors.New("afpacket: filter exceeds 4096 instructions")

// OwnedFilter builds a classic BPF program that accepts exactly the frames a
// director owns:
//
//   - ARP, if spec.ARP;
//   - IPv6 neighbour solicitations/advertisements, if spec.NDP;
//   - IPv4/IPv6 destined to a VIP or to a local address;
//   - IPv4/IPv6 sourced from a real server;
//   - ICMP errors (destination unreachable, source quench, time exceeded:
//     the types IPVS inspects) in unfragmented or first-fragment IPv4, and
//     ICMPv6 errors (types 1-127) directly after the IPv6 header, whatever
//     their addresses, because they may concern a connection.
//
// Everything else is dropped, and so are IPv4 and IPv6 frames too short for
// their fixed header. Limitations: only untagged Ethernet frames are
// matched (802.1Q/802.1ad-tagged frames are dropped; on NICs that strip the
// tag in hardware the kernel presents the frame untagged and it is matched
// normally); an ICMPv6 message behind IPv6 extension headers is matched only
// by its addresses. IPv4-mapped IPv6 addresses in the spec are treated as
// IPv4.
func OwnedFilter(spec FilterSpec) ([]bpf.RawInstruction, error) {
	var v4dst, v6dst, v4src, v6src []netip.Addr
	split := func(what string, in []netip.Addr, v4, v6 *[]netip.Addr) error {
		for _, a := range in {
			if !a.IsValid() {
				return fmt.Errorf("owned filter: invalid %s address", what)
			}
			a = a.Unmap()
			if a.Is4() {
				*v4 = append(*v4, a)
			} else {
				*v6 = append(*v6, a.WithZone(""))
			}
		}
		return nil
	}
	if err := split("VIP", spec.VIPs, &v4dst, &v6dst); err != nil {
		return nil, err
	}
	if err := split("local", spec.LocalAddrs, &v4dst, &v6dst); err != nil {
		return nil, err
	}
	if err := split("real server", spec.RealServers, &v4src, &v6src); err != nil {
		return nil, err
	}

	v4 := ipv4Section(v4dst, v4src)
	v6 := ipv6Section(v6dst, v6src, spec.NDP)

	// Dispatch on the EtherType. Far jumps use ja (32-bit offset); all
	// conditional jumps in the program are short.
	prog := []bpf.Instruction{bpf.LoadAbsolute{Off: offEtherType, Size: 2}}
	if spec.ARP {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeARP, SkipTrue: 0, SkipFalse: 1},
			bpf.RetConstant{Val: acceptLen},
		)
	}
	prog = append(prog,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeIPv4, SkipTrue: 0, SkipFalse: 1},
		bpf.Jump{Skip: 3}, // to the IPv4 section
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeIPv6, SkipTrue: 0, SkipFalse: 1},
		bpf.Jump{Skip: uint32(1 + len(v4))}, // to the IPv6 section
		bpf.RetConstant{Val: 0},
	)
	prog = append(prog, v4...)
	prog = append(prog, v6...)
	if len(prog) > maxFilterLen {
		return nil, ErrFilterTooLong
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("owned filter: %w", err)
	}
	return raw, nil
}

// ipv4Section matches IPv4 frames; it ends in a return.
func ipv4Section(dst, src []netip.Addr) []bpf.Instruction {
	p := minLen(offIPv4 + 20)
	if len(dst) > 0 {
		p = append(p, bpf.LoadAbsolute{Off: offIPv4Dst, Size: 4})
		for _, a := range dst {
			p = append(p, matchWord(a.As4())...)
		}
	}
	if len(src) > 0 {
		p = append(p, bpf.LoadAbsolute{Off: offIPv4Src, Size: 4})
		for _, a := range src {
			p = append(p, matchWord(a.As4())...)
		}
	}
	// ICMP errors: protocol 1, fragment offset 0, type 3, 4 or 11.
	return append(p,
		bpf.LoadAbsolute{Off: offIPv4Proto, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMP, SkipTrue: 7},
		bpf.LoadAbsolute{Off: offIPv4Frag, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 5},
		bpf.LoadMemShift{Off: offIPv4},
		bpf.LoadIndirect{Off: offIPv4, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 3, SkipTrue: 3},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 11, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: acceptLen},
	)
}

// minLen drops frames shorter than n bytes, so a truncated header never
// matches on the part that is present.
func minLen(n uint32) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtLen},
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: n, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
	}
}

// matchWord returns accept if A equals the address.
func matchWord(b [4]byte) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: be32(b[:]), SkipTrue: 0, SkipFalse: 1},
		bpf.RetConstant{Val: acceptLen},
	}
}

// ipv6Section matches IPv6 frames; it ends in a return.
func ipv6Section(dst, src []netip.Addr, ndp bool) []bpf.Instruction {
	p := minLen(offIPv6 + 40)
	for _, a := range dst {
		p = append(p, match16(offIPv6Dst, a.As16())...)
	}
	for _, a := range src {
		p = append(p, match16(offIPv6Src, a.As16())...)
	}
	// ICMPv6 directly after the fixed header: errors (type < 128) and,
	// if asked, NS/NA.
	p = append(p,
		bpf.LoadAbsolute{Off: offIPv6Next, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 4},
		bpf.LoadAbsolute{Off: offICMPv6, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: 128, SkipTrue: 3},
	)
	if ndp {
		p = append(p,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 135, SkipTrue: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 136, SkipTrue: 1},
		)
	} else {
		// Same layout, so the jump distances above hold.
		p = append(p, bpf.Jump{Skip: 0}, bpf.Jump{Skip: 0})
	}
	return append(p,
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: acceptLen},
	)
}

// match16 returns accept if the 16 bytes at off equal the address; otherwise
// it falls through to the next instruction after it.
func match16(off uint32, b [16]byte) []bpf.Instruction {
	p := make([]bpf.Instruction, 0, 9)
	for i := range 4 {
		p = append(p,
			bpf.LoadAbsolute{Off: off + uint32(4*i), Size: 4},
			// On mismatch skip the rest of this block: the remaining
			// load/compare pairs and the return.
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: be32(b[4*i:]), SkipTrue: uint8(2*(3-i) + 1)},
		)
	}
	return append(p, bpf.RetConstant{Val: acceptLen})
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
