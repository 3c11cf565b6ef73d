package healthcheck

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSCheck is keepalived's DNS_CHECK (check_dns.c): one UDP query of
// Type/Name (class IN, recursion desired, random ID); success when a reply
// with the same ID, QR set and RCODE 0 arrives within Target.Timeout (the
// answer count is not checked). Datagrams too short for a header, with
// another ID, or without QR are ignored and the probe keeps waiting; a
// non-zero RCODE, a read error (ICMP unreachable) or the timeout fail.
type DNSCheck struct {
	// Type is `type`; zero means SOA (keepalived's default).
	Type dnsmessage.Type
	// Name is `name`; empty means "." (the root). A final dot is added
	// when missing.
	Name string
}

// dnsBufSize bounds the reply read (keepalived's DNS_BUFFER_SIZE is 768;
// a larger buffer only avoids truncating bigger answers).
const dnsBufSize = 1500

// Probe sends the query and waits for the reply (see DNSCheck).
func (d *DNSCheck) Probe(ctx context.Context, t Target) Result {
	name := ServiceString(t.Addr, "udp")
	fail := func(format string, args ...any) Result {
		return Result{Msg: fmt.Sprintf("DNS_CHECK (%s) ", name) + fmt.Sprintf(format, args...)}
	}
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	query, err := d.query(id)
	if err != nil {
		return fail("cannot build the query: %v.", err)
	}
	ctx, cancel := probeContext(ctx, t)
	defer cancel()
	conn, err := probeDialer(t, true).DialContext(ctx, "udp", t.Addr.String())
	if err != nil {
		return fail("connection error: %v.", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(longAgo) })
	defer stop()
	if _, err := conn.Write(query); err != nil {
		return fail("failed to write socket: %v.", err)
	}
	buf := make([]byte, dnsBufSize)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if IsTimeout(err) {
				return fail("read timeout from socket.")
			}
			return fail("failed to read socket. %v.", err)
		}
		switch v := DNSReplyVerdict(id, buf[:n]); {
		case v == DNSReplyOK:
			return Result{OK: true, Msg: fmt.Sprintf("DNS_CHECK (%s) succeeded.", name)}
		case v >= DNSReplyRcode:
			return fail("error occurred. (rcode = %d)", int(v-DNSReplyRcode))
		}
	}
}

// query builds the DNS query message.
func (d *DNSCheck) query(id uint16) ([]byte, error) {
	typ := d.Type
	if typ == 0 {
		typ = dnsmessage.TypeSOA
	}
	qname := d.Name
	if qname == "" {
		qname = "."
	}
	if !strings.HasSuffix(qname, ".") {
		qname += "."
	}
	n, err := dnsmessage.NewName(qname)
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{ID: id, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: n, Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	return b.Finish()
}

// DNSVerdict is what one received datagram means to DNS_CHECK.
type DNSVerdict int

// DNSReplyIgnore: not our reply (short, other ID, not a response), keep
// waiting. DNSReplyOK: success. DNSReplyRcode+N: a reply with RCODE N ≠ 0,
// failure.
const (
	DNSReplyIgnore DNSVerdict = iota
	DNSReplyOK
	DNSReplyRcode DNSVerdict = 16
)

// DNSReplyVerdict judges a datagram against the query ID as
// dns_recv_thread does: only the 12-byte header is read.
func DNSReplyVerdict(id uint16, b []byte) DNSVerdict {
	var p dnsmessage.Parser
	h, err := p.Start(b)
	if err != nil || h.ID != id || !h.Response {
		return DNSReplyIgnore
	}
	if h.RCode != dnsmessage.RCodeSuccess {
		return DNSReplyRcode + DNSVerdict(h.RCode&0xf)
	}
	return DNSReplyOK
}

// errDNSType reports an unknown DNS_CHECK type.
var errDNSType = errors.New("unknown DNS_CHECK type")

// ParseDNSType maps DNS_CHECK's `type` (A, NS, CNAME, SOA, MX, TXT, AAAA,
// in any case) to a type. keepalived logs an unknown type and keeps SOA;
// so does the returned type, with an error for the caller to log.
func ParseDNSType(s string) (dnsmessage.Type, error) {
	switch strings.ToUpper(s) {
	case "A":
		return dnsmessage.TypeA, nil
	case "NS":
		return dnsmessage.TypeNS, nil
	case "CNAME":
		return dnsmessage.TypeCNAME, nil
	case "SOA":
		return dnsmessage.TypeSOA, nil
	case "MX":
		return dnsmessage.TypeMX, nil
	case "TXT":
		return dnsmessage.TypeTXT, nil
	case "AAAA":
		return dnsmessage.TypeAAAA, nil
	}
	return dnsmessage.TypeSOA, fmt.Errorf("%w %q", errDNSType, s)
}
