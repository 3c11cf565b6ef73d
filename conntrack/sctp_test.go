package conntrack

import (
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// refSCTP is sctp_states as net/netfilter/ipvs/ip_vs_proto_sctp.c lays it
// out (columns sNO sI1 sIN sCS sCR sCW sCO sCE sES sSS sSR sSA sRJ sCL),
// parsed independently of the Go table in sctp.go.
const refSCTP = `
INPUT   d    ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL
        i    I1 IN IN CS CR CW CO CE ES SS SR SA IN IN
        i_a  CW CW CW CS CR CO CO CE ES SS SR SA RJ CL
        c_e  CR IN IN CR CR CW CO CE ES SS SR SA RJ CL
        c_a  ES I1 IN CS CR CW CO ES ES SS SR SA RJ CL
        s    SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL
        s_a  CL IN IN CS CR CW CO CE ES CL SR CL RJ CL
        s_c  CL CL CL CS CR CW CO CE ES SS SR CL RJ CL
        err  CL I1 IN CS CR CW CO CL ES SS SR SA RJ CL
        ab   CL CL CL CL CL RJ CL CL CL CL CL CL CL CL
OUTPUT  d    ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL
        i    CW CW CW CW CW CW CW CW ES CW CW CW CW CW
        i_a  CS CS CS CS CR CW CO CE ES SS SR SA RJ CL
        c_e  CE CE CE CE CE CE CE CE ES SS SR SA RJ CL
        c_a  ES ES ES ES ES ES ES ES ES SS SR SA RJ CL
        s    SS SS SS SS SS SS SS SS SS SS SR SA RJ CL
        s_a  SA SA SA SA SA CW CO CE ES SA SA SA RJ CL
        s_c  CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL
        err  CL CL CL CL CL CW CO CE ES SS SR SA RJ CL
        ab   CL RJ CL CL CL CL CL CL CL CL CL CL CL CL
IN-ONLY d    ES I1 IN CS CR ES CO CE ES SS SR SA RJ CL
        i    I1 IN IN IN IN IN CO CE ES SS SR SA IN IN
        i_a  CE CE CE CE CE CE CO CE ES SS SR SA RJ CL
        c_e  ES ES ES ES ES ES CO CE ES SS SR SA RJ CL
        c_a  ES I1 IN ES ES CW ES ES ES SS SR SA RJ CL
        s    SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL
        s_a  CL IN IN CS CR CW CO CE CL CL SR CL RJ CL
        s_c  CL CL CL CL CL CW CO CE ES SS CL CL RJ CL
        err  CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL
        ab   CL CL CL CL CL RJ CL CL CL CL CL CL CL CL
`

// The kernel's printed names (sctp_state_name_table), by abbreviation and
// in column order.
var sctpAbbrev = map[string]string{
	"NO": "NONE", "I1": "INIT1", "IN": "INIT", "CS": "C-SENT", "CR": "C-REPLIED", "CW": "C-WAIT",
	"CO": "COOKIE", "CE": "C-ECHOED", "ES": "ESTABLISHED", "SS": "S-SENT", "SR": "S-RECEIVED",
	"SA": "S-ACK-SENT", "RJ": "REJECTED", "CL": "CLOSED",
}
var sctpColumns = []string{"NO", "I1", "IN", "CS", "CR", "CW", "CO", "CE", "ES", "SS", "SR", "SA", "RJ", "CL"}

// A chunk type for each row (sctp_events).
var sctpRowChunk = map[string]uint8{"d": 0, "i": 1, "i_a": 2, "c_e": 10, "c_a": 11, "s": 7, "s_a": 8, "s_c": 14, "err": 9, "ab": 6}

// sctpTimeoutByName is sctp_timeouts by printed state name.
var sctpTimeoutByName = map[string]time.Duration{
	"NONE": 2 * time.Second, "INIT1": 4 * time.Second, "ESTABLISHED": 900 * time.Second, "REJECTED": 4 * time.Second,
}

// TestSCTPStateTable drives one connection per cell through the public
// Track path, as checkTable does for TCP: INPUT on a NAT connection's
// inbound key, OUTPUT on its reply key, IN-ONLY on a DR connection's
// inbound key; the new state's timeout and the destination's
// active/inactive accounting (only ESTABLISHED is active) are checked too.
func TestSCTPStateTable(t *testing.T) {
	tb := newTable(t, 64)
	dir, cells := "", 0
	for _, line := range strings.Split(strings.TrimSpace(refSCTP), "\n") {
		f := strings.Fields(line)
		if len(f) == 16 {
			dir, f = f[0], f[1:]
		}
		if len(f) != 15 {
			t.Fatalf("bad reference line %q", line)
		}
		chunk, ok := sctpRowChunk[f[0]]
		if !ok {
			t.Fatalf("row %q", f[0])
		}
		for col, cell := range f[1:] {
			fwd := spec.FwdMasq
			if dir == "IN-ONLY" {
				fwd = spec.FwdRoute
			}
			d := newDest("10.1.0.1", 8080, fwd)
			in := KeyFrom(ProtoSCTP, ap("10.0.0.1:40000"), ap("192.0.2.1:80"))
			var c Conn
			if err := tb.Create(&NewConn{In: in, Fwd: fwd, Dest: d, Real: EndpointFrom(ap("10.1.0.1:8080"))}, SCTPEventOf(1, 0, false), 0, &c); err != nil {
				t.Fatal(err)
			}
			start := State(col)
			e := &tb.ents[c.Handle.idx()]
			if e.state != SCTPInit1 {
				t.Fatalf("INIT creates %s, want INIT1", StateName(ProtoSCTP, false, e.state))
			}
			e.state = start
			k := in
			if dir == "OUTPUT" {
				k = outKeyOf(&c)
			}
			var got Conn
			if !tb.Track(k, SCTPEventOf(chunk, 0, false), sec, &got) {
				t.Fatalf("%s %s %s: lookup failed", dir, f[0], sctpColumns[col])
			}
			want := sctpAbbrev[cell]
			if got.StateName() != want || got.OldState != start {
				t.Errorf("%s %s from %s: got %s (old %v), want %s", dir, f[0], sctpColumns[col], got.StateName(), got.OldState, want)
			}
			wantTO, ok := sctpTimeoutByName[want]
			if !ok {
				wantTO = 61 * time.Second // IP_VS_SCTP_MAX_RTO
			}
			if got.Timeout != wantTO || got.Expires != sec+int64(wantTO) {
				t.Errorf("%s %s from %s: timeout %v, want %v", dir, f[0], sctpColumns[col], got.Timeout, wantTO)
			}
			// The start state was forced without its accounting: only a
			// change to ESTABLISHED makes the connection active.
			if wantActive := want == "ESTABLISHED" && got.State != start; (d.ActiveConns() == 1) != wantActive {
				t.Errorf("%s %s from %s: dest active %d", dir, f[0], sctpColumns[col], d.ActiveConns())
			}
			if !tb.ExpireNow(got.Handle, sec) {
				t.Fatal("ExpireNow failed")
			}
			cells++
		}
	}
	if cells != 3*10*14 {
		t.Fatalf("checked %d cells, want 420", cells)
	}
}

// TestSCTPAssociationTraces: a NAT association from INIT to SHUTDOWN
// COMPLETE, and a DR one, seen as IPVS sees them; ESTABLISHED makes the
// destination's connection active and the end makes it inactive again.
func TestSCTPAssociationTraces(t *testing.T) {
	tb := newTable(t, 64)
	for n, tc := range []struct {
		fwd   spec.Fwd
		steps []struct {
			out   bool
			chunk uint8
			want  string
		}
	}{
		{spec.FwdMasq, []struct {
			out   bool
			chunk uint8
			want  string
		}{{false, 1, "INIT1"}, {true, 2, "C-SENT"}, {false, 10, "C-REPLIED"}, {true, 11, "ESTABLISHED"},
			{false, 0, "ESTABLISHED"}, {true, 3, "ESTABLISHED"}, {false, 7, "S-RECEIVED"}, {true, 8, "S-ACK-SENT"}, {false, 14, "CLOSED"}}},
		{spec.FwdRoute, []struct {
			out   bool
			chunk uint8
			want  string
		}{{false, 1, "INIT1"}, {false, 10, "ESTABLISHED"}, {false, 0, "ESTABLISHED"}, {false, 7, "S-RECEIVED"}, {false, 14, "CLOSED"}}},
	} {
		d := newDest("10.1.0.1", 8080, tc.fwd)
		in := KeyFrom(ProtoSCTP, ap("10.0.0.9:5000"), ap("192.0.2.1:80"))
		in.SrcPort += uint16(n)
		var c Conn
		if err := tb.Create(&NewConn{In: in, Fwd: tc.fwd, Dest: d}, SCTPEventOf(tc.steps[0].chunk, 0, false), 0, &c); err != nil {
			t.Fatal(err)
		}
		if c.StateName() != tc.steps[0].want {
			t.Fatalf("%v: created in %s", tc.fwd, c.StateName())
		}
		for i, s := range tc.steps[1:] {
			k := in
			if s.out {
				k = outKeyOf(&c)
			}
			var got Conn
			if !tb.Track(k, SCTPEventOf(s.chunk, 0, false), int64(i+1)*sec, &got) {
				t.Fatalf("%v step %d: lookup failed", tc.fwd, i+1)
			}
			if got.StateName() != s.want {
				t.Fatalf("%v step %d (chunk %d): %s, want %s", tc.fwd, i+1, s.chunk, got.StateName(), s.want)
			}
			if wantActive := int32(0); s.want == "ESTABLISHED" {
				wantActive = 1
				if d.ActiveConns() != wantActive {
					t.Fatalf("%v step %d: active %d", tc.fwd, i+1, d.ActiveConns())
				}
			} else if d.ActiveConns() != 0 || d.InactConns() != 1 {
				t.Fatalf("%v step %d: active %d inactive %d", tc.fwd, i+1, d.ActiveConns(), d.InactConns())
			}
		}
		recount(t, tb, d)
	}
}

// TestSCTPEventOf: chunk types map as sctp_events does, unknown types are
// DATA, and an ABORT bundled after a COOKIE ECHO or COOKIE ACK wins.
func TestSCTPEventOf(t *testing.T) {
	for _, tc := range []struct {
		first, next uint8
		hasNext     bool
		want        SCTPEvent
	}{
		{0, 0, false, SCTPEvData}, {1, 0, false, SCTPEvInit}, {2, 0, false, SCTPEvInitAck},
		{3, 0, false, SCTPEvData}, {4, 0, false, SCTPEvData}, {5, 0, false, SCTPEvData},
		{6, 0, false, SCTPEvAbort}, {7, 0, false, SCTPEvShutdown}, {8, 0, false, SCTPEvShutdownAck},
		{9, 0, false, SCTPEvError}, {10, 0, false, SCTPEvCookieEcho}, {11, 0, false, SCTPEvCookieAck},
		{12, 0, false, SCTPEvData}, {13, 0, false, SCTPEvData}, {14, 0, false, SCTPEvShutdownComplete},
		{15, 0, false, SCTPEvData}, {0xc1, 0, false, SCTPEvData}, {255, 0, false, SCTPEvData},
		{10, 6, true, SCTPEvAbort}, {11, 6, true, SCTPEvAbort}, {10, 0, true, SCTPEvCookieEcho},
		{0, 6, true, SCTPEvData}, {10, 6, false, SCTPEvCookieEcho},
	} {
		if got := SCTPEventOf(tc.first, tc.next, tc.hasNext); got != tc.want {
			t.Errorf("SCTPEventOf(%d, %d, %v) = %d, want %d", tc.first, tc.next, tc.hasNext, got, tc.want)
		}
	}
	if got := StateName(ProtoSCTP, false, 99); got != "ERR!" {
		t.Errorf("out-of-range state prints %q", got)
	}
}

// TestSCTPEviction: a full table evicts an SCTP association being set up
// for a new connection, never an ESTABLISHED one (which a datagram flow's
// rule would have evicted).
func TestSCTPEviction(t *testing.T) {
	tb := newTable(t, 2)
	d := newDest("10.1.0.1", 80, spec.FwdMasq)
	est := KeyFrom(ProtoSCTP, ap("10.0.0.1:1000"), ap("192.0.2.1:80"))
	setup := KeyFrom(ProtoSCTP, ap("10.0.0.1:1001"), ap("192.0.2.1:80"))
	var c Conn
	if err := tb.Create(&NewConn{In: est, Fwd: spec.FwdMasq, Dest: d}, SCTPEvInit, 0, &c); err != nil {
		t.Fatal(err)
	}
	tb.Track(outKeyOf(&c), SCTPEvInitAck, 0, &c)
	tb.Track(est, SCTPEvCookieEcho, 0, &c)
	tb.Track(outKeyOf(&c), SCTPEvCookieAck, 0, &c)
	if c.StateName() != "ESTABLISHED" {
		t.Fatalf("handshake ended in %s", c.StateName())
	}
	if err := tb.Create(&NewConn{In: setup, Fwd: spec.FwdMasq, Dest: d}, SCTPEvInit, sec, &c); err != nil {
		t.Fatal(err)
	}
	// Both entries used: the third connection must evict the INIT1 one.
	third := KeyFrom(ProtoSCTP, ap("10.0.0.1:1002"), ap("192.0.2.1:80"))
	if err := tb.Create(&NewConn{In: third, Fwd: spec.FwdMasq, Dest: d}, SCTPEvInit, 2*sec, &c); err != nil || !c.Evicted {
		t.Fatalf("create on a full table: %v (evicted %v)", err, c.Evicted)
	}
	if !tb.Lookup(est, 2*sec, &c) || tb.Lookup(setup, 2*sec, &c) {
		t.Fatal("the ESTABLISHED association was evicted, or the half-open one kept")
	}
	// Now only the ESTABLISHED association and a new one: nothing evictable
	// but the new INIT1.
	fourth := KeyFrom(ProtoSCTP, ap("10.0.0.1:1003"), ap("192.0.2.1:80"))
	_ = tb.Create(&NewConn{In: fourth, Fwd: spec.FwdMasq, Dest: d}, SCTPEvInit, 3*sec, &c)
	if !tb.Lookup(est, 3*sec, &c) {
		t.Fatal("the ESTABLISHED association was evicted")
	}
	recount(t, tb, d)
}

// TestSCTPApplySync: a synced SCTP connection is accepted with its state
// and the state's timeout when the message carries none; an unknown
// state is refused.
func TestSCTPApplySync(t *testing.T) {
	tb := newTable(t, 16)
	d := newDest("10.2.0.10", 3868, spec.FwdRoute)
	s := syncDR(d)
	s.Proto, s.State, s.Timeout = ProtoSCTP, SCTPEstablished, 0
	applyOK(t, tb, &s, 0, SyncCreated)
	if l := one(t, tb, 0); l.StateName() != "ESTABLISHED" || l.Timeout != 900*time.Second || l.ProtoName() != "SCTP" {
		t.Fatalf("synced SCTP connection: %s %s %v", l.ProtoName(), l.StateName(), l.Timeout)
	}
	bad := syncDR(d)
	bad.Proto, bad.State = ProtoSCTP, NumSCTPStates
	bad.Client.Port++
	if _, err := tb.ApplySync(&bad, 0); err == nil {
		t.Fatal("an SCTP state out of range was accepted")
	}
}
