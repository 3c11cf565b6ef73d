package conntrack

import (
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/spec"
)

// The tables exactly as net/netfilter/ipvs/ip_vs_proto_tcp.c lays them out, parsed
// independently of the Go tables in state.go.
const refNormal = `
INPUT   syn   SR   ES   ES   SR   SR   SR   SR   SR   SR   SR   SR
        fin   CL   CW   SS   TW   TW   TW   CL   CW   LA   LI   TW
        ack   ES   ES   SS   ES   FW   TW   CL   CW   CL   LI   ES
        rst   CL   CL   CL   SR   CL   CL   CL   CL   LA   LI   SR
OUTPUT  syn   SS   ES   SS   SR   SS   SS   SS   SS   SS   LI   SR
        fin   TW   FW   SS   TW   FW   TW   CL   TW   LA   LI   TW
        ack   ES   ES   SS   ES   FW   TW   CL   CW   LA   ES   ES
        rst   CL   CL   SS   CL   CL   TW   CL   CL   CL   CL   CL
IN-ONLY syn   SR   ES   ES   SR   SR   SR   SR   SR   SR   SR   SR
        fin   CL   FW   SS   TW   FW   TW   CL   CW   LA   LI   TW
        ack   ES   ES   SS   ES   FW   TW   CL   CW   CL   LI   ES
        rst   CL   CL   CL   SR   CL   CL   CL   CL   LA   LI   CL
`

const refDOS = `
INPUT   syn   SR   ES   ES   SR   SR   SR   SR   SR   SR   SR   SA
        fin   CL   CW   SS   TW   TW   TW   CL   CW   LA   LI   SA
        ack   ES   ES   SS   SR   FW   TW   CL   CW   CL   LI   SA
        rst   CL   CL   CL   SR   CL   CL   CL   CL   LA   LI   CL
OUTPUT  syn   SS   ES   SS   SA   SS   SS   SS   SS   SS   LI   SA
        fin   TW   FW   SS   TW   FW   TW   CL   TW   LA   LI   TW
        ack   ES   ES   SS   ES   FW   TW   CL   CW   LA   ES   ES
        rst   CL   CL   SS   CL   CL   TW   CL   CL   CL   CL   CL
IN-ONLY syn   SA   ES   ES   SR   SA   SA   SA   SA   SA   SA   SA
        fin   CL   FW   SS   TW   FW   TW   CL   CW   LA   LI   TW
        ack   ES   ES   SS   ES   FW   TW   CL   CW   CL   LI   ES
        rst   CL   CL   CL   SR   CL   CL   CL   CL   LA   LI   CL
`

var abbrev = map[string]string{
	"NO": "NONE", "ES": "ESTABLISHED", "SS": "SYN_SENT", "SR": "SYN_RECV", "FW": "FIN_WAIT",
	"TW": "TIME_WAIT", "CL": "CLOSE", "CW": "CLOSE_WAIT", "LA": "LAST_ACK", "LI": "LISTEN", "SA": "SYNACK",
}

// States in column order, by printed name.
var columns = []string{"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK"}

var eventFlags = map[string]uint8{"syn": TCPSyn, "fin": TCPFin | TCPAck, "ack": TCPAck, "rst": TCPRst | TCPAck}

func stateByName(t *testing.T, name string) State {
	for s := StateNone; s < NumTCPStates; s++ {
		if StateName(ProtoTCP, false, s) == name {
			return s
		}
	}
	t.Fatalf("no state %q", name)
	return 0
}

// checkTable drives one connection per cell through the public Track path:
// the INPUT rows on a NAT conn's inbound key, OUTPUT on its reply key,
// IN-ONLY on a DR conn (NOOUTPUT) inbound key.
func checkTable(t *testing.T, ref string, secure bool) {
	tb := newTable(t, 64)
	tb.SetSecureTCP(secure)
	dir := ""
	cells := 0
	for _, line := range strings.Split(strings.TrimSpace(ref), "\n") {
		f := strings.Fields(line)
		if len(f) == 13 {
			dir, f = f[0], f[1:]
		}
		if len(f) != 12 {
			t.Fatalf("bad reference line %q", line)
		}
		ev := f[0]
		for col, cell := range f[1:] {
			fwd := spec.FwdMasq
			if dir == "IN-ONLY" {
				fwd = spec.FwdRoute
			}
			in := tcpKey("10.0.0.1:40000", "192.0.2.1:80")
			var c Conn
			// Create with a segment without flags (→ CLOSE), then force
			// the start state.
			if err := tb.Create(&NewConn{In: in, Fwd: fwd, Real: EndpointFrom(ap("10.1.0.1:8080"))}, 0, 0, &c); err != nil {
				t.Fatal(err)
			}
			start := stateByName(t, columns[col])
			tb.ents[c.Handle.idx()].state = start
			k := in
			if dir == "OUTPUT" {
				k = outKeyOf(&c)
			}
			var got Conn
			if !tb.Track(k, eventFlags[ev], sec, &got) {
				t.Fatalf("%s %s %s: lookup failed", dir, ev, columns[col])
			}
			if want := abbrev[cell]; got.StateName() != want || got.OldState != start {
				t.Errorf("%s %s from %s: got %s (old %v), want %s", dir, ev, columns[col], got.StateName(), got.OldState, want)
			}
			if wantTO := DefaultTCPTimeout(got.State); got.Timeout != wantTO || got.Expires != sec+int64(wantTO) {
				t.Errorf("%s %s from %s: timeout %v expires %d, want %v", dir, ev, columns[col], got.Timeout, got.Expires, wantTO)
			}
			if wantNoOut := dir == "IN-ONLY"; (got.Flags&FlagNoOutput != 0) != wantNoOut {
				t.Errorf("%s: NOOUTPUT = %v", dir, !wantNoOut)
			}
			if !tb.ExpireNow(got.Handle, sec) {
				t.Fatal("ExpireNow failed")
			}
			cells++
		}
	}
	if cells != 3*4*11 {
		t.Fatalf("checked %d cells, want 132", cells)
	}
}

func TestTCPStateTableNormal(t *testing.T) { checkTable(t, refNormal, false) }
func TestTCPStateTableSecure(t *testing.T) { checkTable(t, refDOS, true) }

func TestTCPNoFlagsGoesToClose(t *testing.T) {
	tb := newTable(t, 8)
	var c Conn
	in := tcpKey("10.0.0.1:1", "192.0.2.1:80")
	if err := tb.Create(&NewConn{In: in, Real: EndpointFrom(ap("10.1.0.1:80"))}, TCPSyn, 0, &c); err != nil {
		t.Fatal(err)
	}
	tb.Track(in, TCPAck, 0, &c)
	tb.Track(in, 0, 0, &c)
	if c.State != StateClose || c.Timeout != DefaultTCPTimeout(StateClose) {
		t.Fatalf("flagless segment: %s %v, want CLOSE 10s", c.StateName(), c.Timeout)
	}
}

func TestStateNames(t *testing.T) {
	for i, name := range columns {
		if got := StateName(ProtoTCP, false, State(i)); got != name {
			t.Errorf("state %d = %q, want %q", i, got, name)
		}
	}
	for _, c := range []struct {
		proto uint8
		tmpl  bool
		s     State
		want  string
	}{
		{ProtoUDP, false, StateNormal, "UDP"},
		{ProtoTCP, true, StateNone, "NONE"},
		{ProtoIP, true, StateAssured, "ASSURED"},
		{ProtoUDP, true, StateAssured, "ASSURED"},
	} {
		if got := StateName(c.proto, c.tmpl, c.s); got != c.want {
			t.Errorf("StateName(%d,%v,%d) = %q, want %q", c.proto, c.tmpl, c.s, got, c.want)
		}
	}
	if ProtoName(ProtoIP) != "IP" || ProtoName(ProtoTCP) != "TCP" || ProtoName(ProtoUDP) != "UDP" {
		t.Error("protocol names")
	}
}
