package healthcheck

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"
)

// UDPCheck is keepalived's UDP_CHECK (check_udp.c): send a datagram on a
// connected UDP socket and wait Target.Timeout for an answer.
//
// Without RequireReply, silence is success, and so is any reply; an ICMP
// error (port, host or network unreachable: a read error) is failure.
// With RequireReply a reply must arrive; when Reply is set, the reply's
// length must lie in [MinReplyLength, MaxReplyLength] and its first bytes
// must match Reply. (keepalived checks the lengths only when require_reply
// has a HEX argument; so does this.)
type UDPCheck struct {
	// Payload is `payload HEX` (ParseHexMask without wildcards). Empty:
	// udpRandomPayload random bytes per probe.
	Payload []byte
	// RequireReply is `require_reply [HEX]`; Reply is its HEX argument
	// (ParseHexMask with wildcards), zero when absent.
	RequireReply bool
	Reply        HexMask
	// MinReplyLength and MaxReplyLength are min_reply_length (default 0)
	// and max_reply_length (default 255; 0 here means the default).
	MinReplyLength int
	MaxReplyLength int
}

// udpRandomPayload is the size of the random datagram sent when no payload
// is configured.
const udpRandomPayload = 32

// udpDefaultMaxReply is max_reply_length's default.
const udpDefaultMaxReply = 255

// Probe sends one datagram and judges the answer (see UDPCheck).
func (u *UDPCheck) Probe(ctx context.Context, t Target) Result {
	name := ServiceString(t.Addr, "udp")
	ctx, cancel := probeContext(ctx, t)
	defer cancel()
	conn, err := probeDialer(t, true).DialContext(ctx, "udp", t.Addr.String())
	if err != nil {
		return Result{Msg: fmt.Sprintf("UDP connection to %s failed: %v.", name, err)}
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(longAgo) })
	defer stop()

	payload := u.Payload
	if len(payload) == 0 {
		payload = make([]byte, udpRandomPayload)
		_, _ = rand.Read(payload)
	}
	if _, err := conn.Write(payload); err != nil {
		return Result{Msg: fmt.Sprintf("UDP connection to %s failed: %v.", name, err)}
	}
	maxLen := u.MaxReplyLength
	if maxLen <= 0 {
		maxLen = udpDefaultMaxReply
	}
	buf := make([]byte, maxLen+1)
	n, err := conn.Read(buf)
	switch {
	case err != nil && IsTimeout(err):
		if errors.Is(ctx.Err(), context.Canceled) {
			return Result{Msg: fmt.Sprintf("UDP connection to %s cancelled.", name)}
		}
		if u.RequireReply {
			return Result{Msg: fmt.Sprintf("UDP connection to %s timeout.", name)}
		}
		return Result{OK: true, Msg: fmt.Sprintf("UDP connection to %s success.", name)}
	case err != nil:
		return Result{Msg: fmt.Sprintf("UDP connection to %s failed: %v.", name, err)}
	}
	if u.RequireReply && len(u.Reply.Data) > 0 && !u.replyOK(buf[:n], maxLen) {
		return Result{Msg: fmt.Sprintf("UDP check to %s reply data mismatch.", name)}
	}
	return Result{OK: true, Msg: fmt.Sprintf("UDP connection to %s success.", name)}
}

// replyOK is check_udp_reply: length within bounds, and the first
// min(len(reply), len(mask)) bytes match.
func (u *UDPCheck) replyOK(reply []byte, maxLen int) bool {
	if len(reply) < u.MinReplyLength || len(reply) > maxLen {
		return false
	}
	return u.Reply.Match(reply)
}

// HexMask is a HEX string of UDP_CHECK: bytes to compare, and for each the
// bits that are "don't care" (an X nibble).
type HexMask struct {
	Data []byte
	// Wild has a set bit for each bit of Data to ignore; nil: none.
	Wild []byte
}

// Match reports whether the first min(len(b), len(m.Data)) bytes of b
// match m (keepalived compares only as many bytes as the reply has).
func (m HexMask) Match(b []byte) bool {
	n := min(len(b), len(m.Data))
	for i := range n {
		care := byte(0xff)
		if m.Wild != nil {
			care = ^m.Wild[i]
		}
		if (b[i]^m.Data[i])&care != 0 {
			return false
		}
	}
	return true
}

// errHex reports an invalid HEX string.
var errHex = errors.New("invalid hex string")

// ParseHexMask parses a HEX argument as keepalived's read_hex_str does:
// hex digits in pairs, each pair one byte; spaces and tabs between bytes
// are ignored and a single digit before a space (or at the end) is one
// byte ("1 02" = 01 02); with wildcards, x or X stands for a don't-care
// nibble. An empty string, or any other character, is an error.
// (keepalived also rejects a string whose last byte is ff, an artefact of
// its error marker; this does not.)
func ParseHexMask(s string, wildcards bool) (HexMask, error) {
	var m HexMask
	wild := false
	nibble := func(c byte) (v, w byte, ok bool) {
		switch {
		case miscIsHex(c):
			return miscHexNibble(c), 0, true
		case wildcards && (c == 'x' || c == 'X'):
			return 0, 0x0f, true
		}
		return 0, 0, false
	}
	var mask []byte
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i == len(s) {
			break
		}
		v, w, ok := nibble(s[i])
		if !ok {
			return HexMask{}, fmt.Errorf("%w %q at %d", errHex, s, i)
		}
		i++
		if i < len(s) && s[i] != ' ' {
			v2, w2, ok := nibble(s[i])
			if !ok {
				return HexMask{}, fmt.Errorf("%w %q at %d", errHex, s, i)
			}
			i++
			v, w = v<<4|v2, w<<4|w2
		}
		if w != 0 {
			wild = true
		}
		m.Data = append(m.Data, v)
		mask = append(mask, w)
	}
	if len(m.Data) == 0 {
		return HexMask{}, fmt.Errorf("%w %q: empty", errHex, s)
	}
	if wild {
		m.Wild = mask
	}
	return m, nil
}

// probeContext bounds one probe by t.Timeout (when set) as well as ctx.
func probeContext(ctx context.Context, t Target) (context.Context, context.CancelFunc) {
	if t.Timeout > 0 {
		return context.WithTimeout(ctx, t.Timeout)
	}
	return context.WithCancel(ctx)
}

// probeDialer is a net.Dialer for Target's bindto, bind_port and fwmark
// (and, for UDP, ICMP errors reported on the socket: probeControl).
func probeDialer(t Target, udp bool) *net.Dialer {
	d := &net.Dialer{Control: probeControl(t.FWMark, udp)}
	if t.BindTo.IsValid() || t.BindPort != 0 {
		ip := net.IP(nil)
		if t.BindTo.IsValid() {
			ip = t.BindTo.AsSlice()
		}
		if udp {
			d.LocalAddr = &net.UDPAddr{IP: ip, Port: int(t.BindPort), Zone: t.BindTo.Zone()}
		} else {
			d.LocalAddr = &net.TCPAddr{IP: ip, Port: int(t.BindPort), Zone: t.BindTo.Zone()}
		}
	}
	return d
}

// longAgo is a deadline in the past: it wakes a blocked read at once.
var longAgo = time.Unix(1, 0)
