package conntrack

import (
	"encoding/binary"
	"math/bits"
	"net/netip"

	"github.com/uvs-lb/uvs/header"
)

// Key is a packed connection tuple: protocol, source and destination
// address (16 bytes each, in the As16 form of package header: IPv4 as
// IPv4-mapped IPv6, so header.Parsed's addresses copy in as they are) and
// ports in host byte order. It holds no pointers and is comparable.
type Key struct {
	Src     [16]byte
	Dst     [16]byte
	SrcPort uint16
	DstPort uint16
	Proto   uint8
}

// v4prefix is the IPv4-mapped IPv6 prefix ::ffff:0:0/96.
var v4prefix = [12]byte{10: 0xff, 11: 0xff}

// KeyFromBytes builds a key straight from packet bytes: src and dst are
// the IP header's address fields (4 bytes for IPv4, 16 for IPv6) and the
// ports are in host byte order. It reports false if an address has another
// length.
func KeyFromBytes(proto uint8, src, dst []byte, sport, dport uint16) (Key, bool) {
	var k Key
	if !header.PutAddr(&k.Src, src) || !header.PutAddr(&k.Dst, dst) {
		return Key{}, false
	}
	k.SrcPort, k.DstPort, k.Proto = sport, dport, proto
	return k, true
}

// KeyFrom builds a key from netip values.
func KeyFrom(proto uint8, src, dst netip.AddrPort) Key {
	return Key{
		Src: src.Addr().As16(), Dst: dst.Addr().As16(),
		SrcPort: src.Port(), DstPort: dst.Port(), Proto: proto,
	}
}

// NewTemplateKey returns the key of a persistence template (net/netfilter/ipvs/ip_vs_core.c, ip_vs_sched_persist
// step 2) for a protocol service: the client network snet (client address
// already masked by the service netmask), client port 0, the VIP and vport
// (the service port for PPC, 0 for PCC and FTP).
func NewTemplateKey(proto uint8, snet, vaddr netip.Addr, vport uint16) Key {
	return Key{Src: snet.As16(), Dst: vaddr.As16(), DstPort: vport, Proto: proto}
}

// NewFWMarkTemplateKey returns the key of a firewall-mark service's template
// (PFWMC): protocol IPPROTO_IP, the client network, the mark in place of
// the VIP (as the IPv4 address whose value it is, so listings print it as
// ipvsadm does, e.g. 0.0.0.7) and port 0.
func NewFWMarkTemplateKey(snet netip.Addr, mark uint32) Key {
	k := Key{Src: snet.As16()}
	copy(k.Dst[:12], v4prefix[:])
	binary.BigEndian.PutUint32(k.Dst[12:], mark)
	return k
}

// SrcAddrPort returns the source as a netip value (IPv4 unmapped).
func (k Key) SrcAddrPort() netip.AddrPort { return addrPort(k.Src, k.SrcPort) }

// DstAddrPort returns the destination as a netip value (IPv4 unmapped).
func (k Key) DstAddrPort() netip.AddrPort { return addrPort(k.Dst, k.DstPort) }

// Reverse returns the key of the opposite direction of the same tuple.
func (k Key) Reverse() Key {
	return Key{Src: k.Dst, Dst: k.Src, SrcPort: k.DstPort, DstPort: k.SrcPort, Proto: k.Proto}
}

func addrPort(a [16]byte, p uint16) netip.AddrPort {
	return netip.AddrPortFrom(header.AddrFrom16(a), p)
}

// Hash constants: arbitrary odd 64-bit values (digits of pi and e).
const (
	hc0 = 0x243f6a8885a308d3
	hc1 = 0x13198a2e03707345
	hc2 = 0xa4093822299f31d1
	hc3 = 0x082efa98ec4e6c89
	hc4 = 0x452821e638d01377
	hc5 = 0xb7e151628aed2a6b
)

// mum is the folded 128-bit product, the mixing step of wyhash-style hashes.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash mixes the whole key with the table's secret seed. It does not
// allocate and inlines into the lookup path.
func (k *Key) hash(seed uint64) uint64 {
	le := binary.LittleEndian
	a := mum(le.Uint64(k.Src[0:8])^seed^hc0, le.Uint64(k.Src[8:16])^hc1)
	b := mum(le.Uint64(k.Dst[0:8])^hc2, le.Uint64(k.Dst[8:16])^seed^hc3)
	p := uint64(k.SrcPort) | uint64(k.DstPort)<<16 | uint64(k.Proto)<<32
	return mum(a^p^hc4, b^hc5)
}
