package afxdp

import "encoding/binary"

// refClassify is the reference the XDP program is tested against: plain Go,
// written from the package documentation, reporting whether the program
// must redirect frame given the maps' contents.
func refClassify(f []byte, t *tables) bool {
	if len(f) < 14 {
		return false
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0806:
		if len(f) < 42 || binary.BigEndian.Uint16(f[14:]) != 1 || binary.BigEndian.Uint16(f[16:]) != 0x0800 ||
			f[18] != 6 || f[19] != 4 || binary.BigEndian.Uint16(f[20:]) != 1 {
			return false
		}
		return t.addrs[mapped4(f[38:42])]&flagNeigh != 0
	case 0x0800:
		return ref4(f, t)
	case 0x86dd:
		return ref6(f, t)
	}
	return false
}

func mapped4(b []byte) addrKey {
	var k addrKey
	k[10], k[11] = 0xff, 0xff
	copy(k[12:], b[:4])
	return k
}

func isL4(p uint8) bool { return p == 6 || p == 17 || p == 132 }

func ref4(f []byte, t *tables) bool {
	if len(f) < 34 || f[14]>>4 != 4 {
		return false
	}
	ihl := int(f[14]&15) * 4
	if ihl < 20 {
		return false
	}
	l4 := 14 + ihl
	frag := binary.BigEndian.Uint16(f[20:])&0x1fff != 0
	proto := f[23]
	src, dst := mapped4(f[26:30]), mapped4(f[30:34])
	if proto == 1 {
		if frag || len(f) < l4+8 {
			return false
		}
		switch f[l4] {
		case 3, 4, 11, 12:
			return refICMPError(f, l4, dst, false, t)
		}
		return false
	}
	return refL4(f, proto, l4, frag, src, dst, t)
}

func ref6(f []byte, t *tables) bool {
	if len(f) < 54 || f[14]>>4 != 6 {
		return false
	}
	nh := f[20]
	off := 54
	frag := false
	walked := false
	for range 4 {
		switch nh {
		case 0, 43, 60:
			if len(f) < off+2 {
				return false
			}
			nh, off = f[off], off+(int(f[off+1])+1)*8
			continue
		case 44:
			if len(f) < off+8 {
				return false
			}
			frag = frag || binary.BigEndian.Uint16(f[off+2:])&0xfff8 != 0
			nh, off = f[off], off+8
			continue
		}
		walked = true
		break
	}
	if !walked && (nh == 0 || nh == 43 || nh == 60 || nh == 44) {
		return false
	}
	var src, dst addrKey
	copy(src[:], f[22:38])
	copy(dst[:], f[38:54])
	if nh == 58 {
		if frag || len(f) < off+8 {
			return false
		}
		switch typ := f[off]; {
		case typ == 135:
			if len(f) < off+24 {
				return false
			}
			var target addrKey
			copy(target[:], f[off+8:off+24])
			return t.addrs[target]&flagNeigh != 0
		case typ >= 1 && typ <= 4:
			return refICMPError(f, off, dst, true, t)
		}
		return false
	}
	return refL4(f, nh, off, frag, src, dst, t)
}

func refL4(f []byte, proto uint8, l4 int, frag bool, src, dst addrKey, t *tables) bool {
	if !isL4(proto) {
		return false
	}
	var sport, dport uint16
	if !frag {
		if len(f) < l4+4 {
			return false
		}
		sport, dport = binary.BigEndian.Uint16(f[l4:]), binary.BigEndian.Uint16(f[l4+2:])
		if _, ok := t.ports[makePortKey(dst, proto, kindService, dport)]; ok {
			return true
		}
	}
	if _, ok := t.ports[makePortKey(dst, proto, kindService, 0)]; ok {
		return true
	}
	if frag {
		return false
	}
	if v, ok := t.ports[makePortKey(dst, proto, kindLocalRange, 0)]; ok && dport >= uint16(v) && dport <= uint16(v>>16) {
		return true
	}
	if _, ok := t.ports[makePortKey(src, proto, kindNATReply, sport)]; !ok {
		return false
	}
	return t.addrs[dst]&flagLocal == 0
}

func refICMPError(f []byte, l4 int, dst addrKey, v6 bool, t *tables) bool {
	if fl, ok := t.addrs[dst]; ok {
		if fl&flagVIP != 0 {
			return true
		}
		if fl&flagLocal != 0 {
			return false
		}
	}
	in := l4 + 8
	var proto uint8
	var idst addrKey
	var dport uint16
	if v6 {
		if len(f) < in+44 {
			return false
		}
		proto = f[in+6]
		copy(idst[:], f[in+24:in+40])
		dport = binary.BigEndian.Uint16(f[in+42:])
	} else {
		if len(f) < in+20 || f[in]>>4 != 4 {
			return false
		}
		ihl := int(f[in]&15) * 4
		if ihl < 20 {
			return false
		}
		proto = f[in+9]
		if !isL4(proto) || len(f) < in+ihl+4 {
			return false
		}
		idst = mapped4(f[in+16 : in+20])
		dport = binary.BigEndian.Uint16(f[in+ihl+2:])
	}
	if !isL4(proto) {
		return false
	}
	_, ok := t.ports[makePortKey(idst, proto, kindNATReply, dport)]
	return ok
}
