package healthcheck

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

// dnsTestServer answers queries on 127.0.0.1 with answer(query), which
// returns the datagram to send back (nil: none).
func dnsTestServer(t testing.TB, answer func(q dnsmessage.Message) []byte) (*udpTestServer, *[]dnsmessage.Question, *sync.Mutex) {
	t.Helper()
	var mu sync.Mutex
	var questions []dnsmessage.Question
	s := udpTestListen(t, "127.0.0.1:0", func(b []byte) []byte {
		var q dnsmessage.Message
		if err := q.Unpack(b); err != nil {
			return nil
		}
		mu.Lock()
		questions = append(questions, q.Questions...)
		mu.Unlock()
		return answer(q)
	})
	return s, &questions, &mu
}

// dnsReply builds a reply to q with the given ID, QR bit and RCODE.
func dnsReply(t testing.TB, q dnsmessage.Message, id uint16, response bool, rcode dnsmessage.RCode) []byte {
	t.Helper()
	m := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, Response: response, RCode: rcode, RecursionDesired: true},
		Questions: q.Questions,
	}
	if response && rcode == dnsmessage.RCodeSuccess && len(q.Questions) > 0 {
		m.Answers = []dnsmessage.Resource{{
			Header: dnsmessage.ResourceHeader{Name: q.Questions[0].Name, Class: dnsmessage.ClassINET, TTL: 60},
			Body:   &dnsmessage.AResource{A: [4]byte{192, 0, 2, 1}},
		}}
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDNSCheckLoopback(t *testing.T) {
	long := 10 * time.Second
	tests := []struct {
		name    string
		answer  func(t testing.TB, q dnsmessage.Message) []byte
		timeout time.Duration
		ok      bool
		msg     string
	}{
		{"noerror", func(t testing.TB, q dnsmessage.Message) []byte {
			return dnsReply(t, q, q.ID, true, dnsmessage.RCodeSuccess)
		}, long, true, "succeeded."},
		{"servfail", func(t testing.TB, q dnsmessage.Message) []byte {
			return dnsReply(t, q, q.ID, true, dnsmessage.RCodeServerFailure)
		}, long, false, "error occurred. (rcode = 2)"},
		{"nxdomain", func(t testing.TB, q dnsmessage.Message) []byte {
			return dnsReply(t, q, q.ID, true, dnsmessage.RCodeNameError)
		}, long, false, "error occurred. (rcode = 3)"},
		{"wrong id is ignored", func(t testing.TB, q dnsmessage.Message) []byte {
			return dnsReply(t, q, q.ID+1, true, dnsmessage.RCodeSuccess)
		}, 300 * time.Millisecond, false, "read timeout from socket."},
		{"query echoed back is ignored", func(t testing.TB, q dnsmessage.Message) []byte {
			return dnsReply(t, q, q.ID, false, dnsmessage.RCodeSuccess)
		}, 300 * time.Millisecond, false, "read timeout from socket."},
		{"short datagram is ignored", func(t testing.TB, q dnsmessage.Message) []byte {
			return []byte{byte(q.ID >> 8), byte(q.ID), 0x80}
		}, 300 * time.Millisecond, false, "read timeout from socket."},
		{"silence", func(t testing.TB, q dnsmessage.Message) []byte { return nil }, 300 * time.Millisecond, false, "read timeout from socket."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := dnsTestServer(t, func(q dnsmessage.Message) []byte { return tt.answer(t, q) })
			r := (&DNSCheck{}).Probe(context.Background(), Target{Addr: s.addr, Timeout: tt.timeout})
			if r.OK != tt.ok || !strings.HasSuffix(r.Msg, tt.msg) {
				t.Errorf("got %+v, want ok=%v msg …%q", r, tt.ok, tt.msg)
			}
		})
	}
}

// TestDNSCheckIgnoresStrayThenAccepts: a wrong-ID reply and an echoed
// query before the real reply do not end the probe.
func TestDNSCheckIgnoresStrayThenAccepts(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var q dnsmessage.Message
			if q.Unpack(buf[:n]) != nil {
				continue
			}
			_, _ = pc.WriteTo(dnsReply(t, q, q.ID^0xffff, true, dnsmessage.RCodeSuccess), from)
			_, _ = pc.WriteTo(dnsReply(t, q, q.ID, false, dnsmessage.RCodeSuccess), from)
			_, _ = pc.WriteTo(dnsReply(t, q, q.ID, true, dnsmessage.RCodeSuccess), from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	if r := (&DNSCheck{}).Probe(context.Background(), Target{Addr: addr, Timeout: 10 * time.Second}); !r.OK {
		t.Errorf("got %+v, want success", r)
	}
}

func TestDNSCheckQuestion(t *testing.T) {
	tests := []struct {
		check DNSCheck
		name  string
		typ   dnsmessage.Type
	}{
		{DNSCheck{}, ".", dnsmessage.TypeSOA},
		{DNSCheck{Type: dnsmessage.TypeA, Name: "example.com"}, "example.com.", dnsmessage.TypeA},
		{DNSCheck{Type: dnsmessage.TypeAAAA, Name: "www.example.org."}, "www.example.org.", dnsmessage.TypeAAAA},
	}
	for _, tt := range tests {
		s, qs, mu := dnsTestServer(t, func(q dnsmessage.Message) []byte {
			return dnsReply(t, q, q.ID, true, dnsmessage.RCodeSuccess)
		})
		r := tt.check.Probe(context.Background(), Target{Addr: s.addr, Timeout: 10 * time.Second})
		if !r.OK {
			t.Errorf("%+v: %+v", tt.check, r)
			continue
		}
		mu.Lock()
		got := append([]dnsmessage.Question(nil), (*qs)...)
		mu.Unlock()
		if len(got) != 1 || got[0].Name.String() != tt.name || got[0].Type != tt.typ || got[0].Class != dnsmessage.ClassINET {
			t.Errorf("%+v: server saw %v, want %s %v IN", tt.check, got, tt.name, tt.typ)
		}
	}
}

func TestDNSCheckUnreachable(t *testing.T) {
	r := (&DNSCheck{}).Probe(context.Background(), Target{Addr: udpClosedPort(t, "127.0.0.1"), Timeout: 10 * time.Second})
	if r.OK || !strings.Contains(r.Msg, "failed to read socket") {
		t.Errorf("got %+v, want a read failure", r)
	}
}

func TestParseDNSType(t *testing.T) {
	for s, want := range map[string]dnsmessage.Type{"A": dnsmessage.TypeA, "ns": dnsmessage.TypeNS, "CNAME": dnsmessage.TypeCNAME,
		"SOA": dnsmessage.TypeSOA, "MX": dnsmessage.TypeMX, "TXT": dnsmessage.TypeTXT, "AAAA": dnsmessage.TypeAAAA} {
		if got, err := ParseDNSType(s); err != nil || got != want {
			t.Errorf("ParseDNSType(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if got, err := ParseDNSType("PTR"); err == nil || got != dnsmessage.TypeSOA {
		t.Errorf("ParseDNSType(PTR) = %v, %v; want SOA and an error", got, err)
	}
}

func TestDNSReplyVerdict(t *testing.T) {
	hdr := func(id uint16, flags uint16) []byte {
		return []byte{byte(id >> 8), byte(id), byte(flags >> 8), byte(flags), 0, 0, 0, 0, 0, 0, 0, 0}
	}
	tests := []struct {
		b    []byte
		want DNSVerdict
	}{
		{hdr(7, 0x8180), DNSReplyOK},
		{hdr(7, 0x8000), DNSReplyOK},
		{hdr(7, 0x8182), DNSReplyRcode + 2},
		{hdr(7, 0x8185), DNSReplyRcode + 5},
		{hdr(8, 0x8180), DNSReplyIgnore},
		{hdr(7, 0x0100), DNSReplyIgnore},
		{hdr(7, 0x8180)[:11], DNSReplyIgnore},
		{nil, DNSReplyIgnore},
	}
	for _, tt := range tests {
		if got := DNSReplyVerdict(7, tt.b); got != tt.want {
			t.Errorf("DNSReplyVerdict(7, %x) = %d, want %d", tt.b, got, tt.want)
		}
	}
}

func FuzzDNSReplyVerdict(f *testing.F) {
	f.Add(uint16(7), []byte{0, 7, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint16(7), []byte{0, 7, 0x81, 0x82, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint16(1), []byte{0, 1, 0x01})
	f.Fuzz(func(t *testing.T, id uint16, b []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("id %d, %d bytes %.200q", id, len(b), b) })()
		v := DNSReplyVerdict(id, b)
		// Reference: keepalived reads the raw header.
		want := DNSReplyIgnore
		if len(b) >= 12 && uint16(b[0])<<8|uint16(b[1]) == id && b[2]&0x80 != 0 {
			want = DNSReplyOK
			if rc := b[3] & 0x0f; rc != 0 {
				want = DNSReplyRcode + DNSVerdict(rc)
			}
		}
		if v != want {
			t.Fatalf("DNSReplyVerdict(%d, %x) = %d, want %d", id, b, v, want)
		}
	})
}
