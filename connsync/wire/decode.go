package wire

import "encoding/binary"

// Reason says why a message, the rest of one, or one entry was dropped.
// A receiver counts them; they are values, not errors built per message.
type Reason uint8

const (
	// ReasonNone: nothing was dropped.
	ReasonNone Reason = iota

	// The whole message is dropped (nothing is applied).

	// ReasonShort: shorter than a version 0 header ("message header too
	// short").
	ReasonShort
	// ReasonBogusSize: the datagram's length differs from the header's
	// size ("bogus message size"), e.g. because it was truncated.
	ReasonBogusSize

	// The rest of the message is dropped (entries before were applied).

	// ReasonTruncated: an entry runs past the end of the message ("too
	// small", "msg > buffer", "bogus conn").
	ReasonTruncated
	// ReasonEntryVersion: an entry's version (ver_size's high 4 bits) is
	// not 0.
	ReasonEntryVersion
	// ReasonEntryType: an IPv4 entry's type has bits other than
	// STYPE_F_INET6 (err -10).
	ReasonEntryType
	// ReasonEntryLen: an entry's length is shorter than its fixed part
	// (err -20).
	ReasonEntryLen
	// ReasonOption: an option header overruns the entry, an option has
	// length 0 or overruns it, a known option is repeated, SEQ_DATA is
	// not 24 bytes or PE_NAME longer than 16 (errs -30 to -70).
	ReasonOption

	// One entry is dropped (the rest continues).

	// ReasonMandatoryOption: an unknown option without IPVS_OPT_F_PARAM.
	ReasonMandatoryOption
	// ReasonProto: a connection of a protocol the kernel does not sync.
	ReasonProto
	// ReasonState: a connection state at or above the protocol's number
	// of states.
	ReasonState
	// ReasonPersistenceEngine: persistence-engine data, and uvs has no
	// persistence engine (a kernel without the named one loaded drops
	// the entry too).
	ReasonPersistenceEngine
	// ReasonLocal: a malformed or repeated uvs FULLNAT option.
	ReasonLocal

	// NumReasons is the number of reasons, for counter arrays.
	NumReasons
)

var reasonNames = [NumReasons]string{
	ReasonNone:              "none",
	ReasonShort:             "short",
	ReasonBogusSize:         "bogus-size",
	ReasonTruncated:         "truncated",
	ReasonEntryVersion:      "entry-version",
	ReasonEntryType:         "entry-type",
	ReasonEntryLen:          "entry-length",
	ReasonOption:            "bad-option",
	ReasonMandatoryOption:   "unknown-mandatory-option",
	ReasonProto:             "unsupported-protocol",
	ReasonState:             "invalid-state",
	ReasonPersistenceEngine: "persistence-engine",
	ReasonLocal:             "bad-fullnat-option",
}

// String returns a short name of r for counters and logs.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Error makes r usable as an error.
func (r Reason) Error() string { return "sync message: " + r.String() }

// WholeMessage reports whether r drops a message before any entry.
func (r Reason) WholeMessage() bool { return r == ReasonShort || r == ReasonBogusSize }

// Header is a message's header.
type Header struct {
	Version int   // 0 or 1
	SyncID  uint8 // the master's syncid
	Count   int   // nr_conns
	Size    int   // the header's size field: the message length
}

// ParseHeader reads msg's header with the kernel's checks: at least 4
// bytes, length equal to the size field (the same offset in both
// versions); version 1 iff version == 1, reserved == 0 and spare == 0.
func ParseHeader(msg []byte) (Header, Reason) {
	if len(msg) < HeaderLenV0 {
		return Header{}, ReasonShort
	}
	size := int(binary.BigEndian.Uint16(msg[2:]))
	if len(msg) != size {
		return Header{Size: size}, ReasonBogusSize
	}
	h := Header{SyncID: msg[1], Size: size}
	// A message shorter than the version 1 header can only be read as
	// version 0 (the kernel would look past its end).
	if len(msg) >= HeaderLenV1 && msg[0] == 0 && msg[5] == 1 && msg[6] == 0 && msg[7] == 0 {
		h.Version, h.Count = 1, int(msg[4])
	} else {
		h.Version, h.Count = 0, int(msg[0])
	}
	return h, ReasonNone
}

// Result is what Decode found in a message.
type Result struct {
	Header
	// Accepted is the number of entries passed to the callback.
	Accepted int
	// Stop says why the message (Stop.WholeMessage()) or its rest was
	// dropped; ReasonNone when it was read to its end.
	Stop Reason
	// Dropped counts single entries dropped, by reason.
	Dropped [NumReasons]uint16
}

// DroppedEntries returns the number of single entries dropped.
func (r *Result) DroppedEntries() int {
	n := 0
	for _, d := range r.Dropped {
		n += int(d)
	}
	return n
}

// Decoder reads messages; its zero value is ready. It holds the entry it
// passes to callbacks, so decoding allocates nothing.
type Decoder struct {
	e Entry
}

// Decode reads msg as the kernel's backup does and calls fn with each
// accepted entry, in order. The entry is the decoder's: valid only during
// the call. fn is not called for a dropped entry or message.
func (d *Decoder) Decode(msg []byte, fn func(*Entry)) Result {
	var r Result
	h, why := ParseHeader(msg)
	r.Header = h
	if why != ReasonNone {
		r.Stop = why
		return r
	}
	if h.Version == 1 {
		d.decodeV1(msg, fn, &r)
	} else {
		d.decodeV0(msg, fn, &r)
	}
	return r
}

// Decode is Decoder.Decode with a fresh decoder.
func Decode(msg []byte, fn func(*Entry)) Result {
	var d Decoder
	return d.Decode(msg, fn)
}

// decodeV1 is ip_vs_process_message's version 1 loop.
func (d *Decoder) decodeV1(msg []byte, fn func(*Entry), r *Result) {
	off := HeaderLenV1
	for range r.Count {
		if off+EntryLenV4 > len(msg) {
			r.Stop = ReasonTruncated
			return
		}
		vs := binary.BigEndian.Uint16(msg[off+2:])
		size := int(vs & 0x0fff)
		if off+size > len(msg) {
			r.Stop = ReasonTruncated
			return
		}
		if vs>>12 != 0 {
			r.Stop = ReasonEntryVersion
			return
		}
		why := d.entryV1(msg[off:], size)
		switch {
		case why == ReasonNone:
			r.Accepted++
			fn(&d.e)
		case why >= ReasonMandatoryOption:
			r.Dropped[why]++
		default:
			r.Stop = why
			return
		}
		off += (size + 3) &^ 3
	}
}

// entryV1 decodes one version 1 entry (ip_vs_proc_sync_conn) into d.e; p
// starts with the entry and holds at least EntryLenV4 bytes, size is the
// entry's length (options included) from its ver_size, within p.
func (d *Decoder) entryV1(p []byte, size int) Reason {
	e := &d.e
	*e = Entry{}
	fixed := EntryLenV4
	switch {
	case p[0]&1 != 0: // STYPE_F_INET6; the kernel looks at no other bit
		e.IPv6 = true
		fixed = EntryLenV6
	case p[0] != 0:
		return ReasonEntryType
	}
	if fixed > size {
		return ReasonEntryLen
	}
	p = p[:size]
	// Options (before anything else, as in the kernel: their errors win).
	var seen uint8 // bits: 1 SEQ, 2 PE_DATA, 4 PE_NAME, 8 FULLNAT
	var peData bool
	badLocal := false
	for o := fixed; o < len(p); {
		if o+2 > len(p) {
			return ReasonOption
		}
		typ, l := p[o], int(p[o+1])
		o += 2
		if l == 0 || o+l > len(p) {
			return ReasonOption
		}
		data := p[o : o+l]
		o += l
		switch typ &^ OptFParam {
		case OptSeqData:
			if seen&1 != 0 || l != SeqLen {
				return ReasonOption
			}
			seen |= 1
			e.HasSeq = true
			getSeq(binary.BigEndian, data, &e.InSeq, &e.OutSeq)
		case OptPEData:
			if seen&2 != 0 {
				return ReasonOption
			}
			seen |= 2
			peData = true
		case OptPEName:
			if seen&4 != 0 || l > peNameMax {
				return ReasonOption
			}
			seen |= 4
		default:
			if typ&OptFParam == 0 {
				return ReasonMandatoryOption
			}
			if typ != OptFullNAT {
				continue // optional and unknown: skipped
			}
			if seen&8 != 0 || l != localLen(e.IPv6) {
				badLocal = true
				continue // the kernel's rules still apply to what follows
			}
			seen |= 8
			e.HasLocal = true
			if e.IPv6 {
				copy(e.LAddr[:], data[:16])
			} else {
				e.LAddr = mapped(data)
			}
			e.LPort = binary.BigEndian.Uint16(data[l-2:])
		}
	}
	e.Proto = p[1]
	e.Flags = binary.BigEndian.Uint32(p[4:])
	e.State = binary.BigEndian.Uint16(p[8:])
	if why := checkState(e.Proto, e.Flags, e.State); why != ReasonNone {
		return why
	}
	// ip_vs_conn_fill_param_sync: PE data needs a persistence engine,
	// and uvs has none. (A PE name alone is ignored.)
	if peData {
		return ReasonPersistenceEngine
	}
	if badLocal {
		return ReasonLocal
	}
	e.CPort = binary.BigEndian.Uint16(p[10:])
	e.VPort = binary.BigEndian.Uint16(p[12:])
	e.DPort = binary.BigEndian.Uint16(p[14:])
	e.FWMark = binary.BigEndian.Uint32(p[16:])
	e.Timeout = binary.BigEndian.Uint32(p[20:])
	if e.IPv6 {
		copy(e.CAddr[:], p[24:40])
		copy(e.VAddr[:], p[40:56])
		copy(e.DAddr[:], p[56:72])
	} else {
		e.CAddr = mapped(p[24:])
		e.VAddr = mapped(p[28:])
		e.DAddr = mapped(p[32:])
	}
	return ReasonNone
}

// checkState applies the kernel's protocol and state checks to a
// non-template entry (templates' states are only logged by the kernel).
func checkState(proto uint8, flags uint32, state uint16) Reason {
	if flags&FlagTemplate != 0 {
		return ReasonNone
	}
	n, ok := NumStates(proto)
	if !ok {
		return ReasonProto
	}
	if state >= n {
		return ReasonState
	}
	return ReasonNone
}

// decodeV0 is ip_vs_process_message_v0.
func (d *Decoder) decodeV0(msg []byte, fn func(*Entry), r *Result) {
	off := HeaderLenV0
	e := &d.e
	for range r.Count {
		if off+EntryLenV0 > len(msg) {
			r.Stop = ReasonTruncated
			return
		}
		p := msg[off:]
		flags := uint32(binary.BigEndian.Uint16(p[20:]))
		n := EntryLenV0
		if flags&FlagSeqMask != 0 {
			n += SeqLen
			if off+n > len(msg) {
				r.Stop = ReasonTruncated
				return
			}
		}
		off += n
		*e = Entry{Proto: p[1], Flags: flags, State: binary.BigEndian.Uint16(p[22:])}
		if why := checkState(e.Proto, e.Flags, e.State); why != ReasonNone {
			r.Dropped[why]++
			continue
		}
		e.CPort = binary.BigEndian.Uint16(p[2:])
		e.VPort = binary.BigEndian.Uint16(p[4:])
		e.DPort = binary.BigEndian.Uint16(p[6:])
		e.CAddr = mapped(p[8:])
		e.VAddr = mapped(p[12:])
		e.DAddr = mapped(p[16:])
		if n > EntryLenV0 {
			e.HasSeq = true
			getSeq(binary.NativeEndian, p[EntryLenV0:], &e.InSeq, &e.OutSeq)
		}
		r.Accepted++
		fn(e)
	}
}

// mapped returns the IPv4-mapped IPv6 form of the IPv4 address at p.
func mapped(p []byte) [16]byte {
	var a [16]byte
	a[10], a[11] = 0xff, 0xff
	copy(a[12:], p[:4])
	return a
}
