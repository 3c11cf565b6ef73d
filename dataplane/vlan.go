package dataplane

import (
	"encoding/binary"

	"github.com/uvs-lb/uvs/header"
)

// VLANs (issue 16).
//
// uvsd serves the parent interface of 802.1Q VLANs without a VLAN device
// of its own: a request tagged with VLAN 100 arrives on the parent with its
// tag in-line (AF_XDP sees it so; AF_PACKET gets it from the kernel's
// metadata, tp_vlan_tci, and puts it back), header.Parse reads it, and
// the connection keeps the VLAN id of its client side
// (conntrack.NewConn.VLAN). What goes back to the client side leaves on
// that VLAN: replies and ICMP errors of the connection (clientHop sets
// Frame.VLAN, emit retags), ICMP errors the worker generates about a
// tagged frame and ARP/NDP answers for VIPs (built from the request's
// link-layer header, tag included). What goes towards real servers leaves
// as routed: untagged (Frame.VLAN 0), the real servers being reached
// through the route's interface.
//
// A VLAN id 0 tag (802.1p priority tag) belongs to the untagged network,
// as in the kernel, which delivers such frames to the parent device: the
// connection is untagged and its replies leave untagged. The priority bits
// of a tag the worker adds are 0 (a VLAN device's default egress map); a
// frame that keeps its tag keeps them. Stacked tags (802.1ad QinQ) are not
// served: header.Parse stops at the second tag.

// vlanOf returns the VLAN id of the parsed frame's 802.1Q tag: 0 for an
// untagged or priority-tagged frame.
func vlanOf(p *header.Parsed) uint16 {
	if !p.VLAN {
		return 0
	}
	return p.VLANID
}

// setTag makes frame f carry its 802.1Q tag f.VLAN in-line (none for 0),
// moving the MAC addresses into the headroom to add a tag or over it to
// remove one; CsumStart, counted from the start of the frame, follows.
// It reports false for a frame it cannot retag (no headroom left), which
// is not to be sent. The common case, an untagged frame leaving untagged,
// costs two tests.
func setTag(f *Frame) bool {
	if f.VLAN == 0 && f.Buf[f.Off+12] != 0x81 {
		// Untagged (no EtherType 0x81xx), stays so: the common case,
		// inlined. Every frame emitted has its Ethernet header (transmit
		// addresses it).
		return true
	}
	return retag(f)
}

// retag is setTag's work for a frame that is tagged or must be.
func retag(f *Frame) bool {
	const tagLen = header.EthernetVLANSize - header.EthernetMinSize
	if f.Len < header.EthernetMinSize {
		return true
	}
	eth := f.Buf[f.Off : f.Off+f.Len]
	tagged := binary.BigEndian.Uint16(eth[12:]) == header.EtherTypeVLAN
	switch {
	case f.VLAN == 0 && !tagged:
		return true
	case f.VLAN != 0 && tagged:
		if len(eth) < header.EthernetVLANSize {
			return false
		}
		tci := binary.BigEndian.Uint16(eth[14:])
		binary.BigEndian.PutUint16(eth[14:], tci&0xf000|f.VLAN&0x0fff)
	case tagged: // untag
		if len(eth) < header.EthernetVLANSize {
			return false
		}
		copy(eth[tagLen:tagLen+12], eth[:12])
		f.Off += tagLen
		f.Len -= tagLen
		if f.CsumStart >= tagLen {
			f.CsumStart -= tagLen
		}
	default: // tag
		if f.Off < tagLen {
			return false
		}
		f.Off -= tagLen
		f.Len += tagLen
		eth = f.Buf[f.Off : f.Off+f.Len]
		copy(eth[:12], eth[tagLen:tagLen+12])
		binary.BigEndian.PutUint16(eth[12:], header.EtherTypeVLAN)
		binary.BigEndian.PutUint16(eth[14:], f.VLAN&0x0fff)
		if f.CsumStart != 0 {
			f.CsumStart += tagLen
		}
	}
	return true
}
