package conntrack

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

func TestTemplateLifecycle(t *testing.T) {
	tb := newTable(t, 16)
	d := newDest("10.1.0.1", 8080, spec.FwdMasq)
	snet := netip.MustParseAddr("10.0.0.0")
	vip := netip.MustParseAddr("192.0.2.1")
	tk := NewTemplateKey(ProtoTCP, snet, vip, 80)
	if _, _, ok := tb.LookupTemplate(tk, 0); ok {
		t.Fatal("template found in empty table")
	}
	th, err := tb.InsertTemplate(tk, d, 300*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if h2, err := tb.InsertTemplate(tk, d, 300*time.Second, 0); !errors.Is(err, ErrExists) || h2 != th {
		t.Fatalf("second insert: %v %v", h2, err)
	}
	if counters(d) != [3]int32{0, 0, 1} {
		t.Fatalf("persistconns: %v", counters(d))
	}
	// Templates and conns never match each other's lookups.
	if tb.Contains(tk) {
		t.Fatal("template matched a conn lookup")
	}
	h, got, ok := tb.LookupTemplate(tk, 100*sec) // re-armed to 400 s
	if !ok || got != d || h != th {
		t.Fatalf("LookupTemplate: %v %v %v", h, got, ok)
	}
	in := tcpKey("10.0.0.1:40000", "192.0.2.1:80")
	var c Conn
	if err := tb.Create(&NewConn{In: in, Dest: d, Template: h}, TCPSyn, 100*sec, &c); err != nil {
		t.Fatal(err)
	}
	if !c.Controlled {
		t.Fatal("conn not linked to its template")
	}
	tmplAt := func(now int64) Listing {
		for _, l := range tb.Snapshot(now, nil) {
			if l.Template {
				return l
			}
		}
		t.Fatal("template gone")
		return Listing{}
	}
	tmpl := func() Listing { return tmplAt(0) }
	if l := tmpl(); l.StateName() != "NONE" || l.NControl != 1 || l.Real != ap("10.1.0.1:8080") {
		t.Fatalf("template %+v", l)
	}
	tb.Track(in, TCPAck, 110*sec, &c) // ESTABLISHED → ASSURED
	if l := tmpl(); l.StateName() != "ASSURED" {
		t.Fatalf("template state %s after ESTABLISHED", l.StateName())
	}
	// Template timer runs out at 400 s while the conn (ESTABLISHED until
	// 1010 s) still uses it: postponed by 60 s, repeatedly.
	if n := tb.Reap(401*sec, 16); n != 0 {
		t.Fatalf("reaped %d", n)
	}
	if l := tmplAt(401 * sec); l.Timeout != 60*time.Second || l.Remaining != 60*time.Second {
		t.Fatalf("postponed template: timeout %v remaining %v at 401 s", l.Timeout, l.Remaining)
	}
	// Re-use now only extends it by 60 s.
	if _, _, ok := tb.LookupTemplate(tk, 420*sec); !ok {
		t.Fatal("template lost")
	}
	if l := tmpl(); l.Remaining != 480*time.Second {
		t.Fatalf("re-armed remaining %v, want 480 s from 0", l.Remaining)
	}
	// The conn expires; then the template can go.
	if n := tb.Reap(1011*sec, 16); n != 1 {
		t.Fatalf("conn expiry removed %d (template still postponed? it was re-armed)", n)
	}
	if l := tmpl(); l.NControl != 0 {
		t.Fatalf("n_control %d after conn expiry", l.NControl)
	}
	if n := tb.Reap(1100*sec, 16); n != 1 || tb.Len() != 0 {
		t.Fatalf("template expiry removed %d, len %d", n, tb.Len())
	}
	if counters(d) != [3]int32{} {
		t.Fatalf("counters %v", counters(d))
	}
	if _, _, ok := tb.LookupTemplate(tk, 0); ok {
		t.Fatal("expired template found")
	}
}

func TestTemplateUDPReplyAssures(t *testing.T) {
	tb := newTable(t, 8)
	d := newDest("10.1.0.1", 0, spec.FwdMasq)
	tk := NewTemplateKey(ProtoUDP, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.0.2.1"), 0)
	th, _ := tb.InsertTemplate(tk, d, time.Minute, 0)
	in := KeyFrom(ProtoUDP, ap("10.0.0.1:1"), ap("192.0.2.1:53"))
	var c Conn
	tb.Create(&NewConn{In: in, Dest: d, Template: th}, 0, 0, &c)
	if c.Real != EndpointFrom(ap("10.1.0.1:53")) {
		t.Fatalf("port-0 dest keeps the packet's port: %v", c.Real.AddrPort())
	}
	tb.Track(in, 0, 0, &c)
	if l := tb.Snapshot(0, nil); l[0].State == StateAssured || l[1].State == StateAssured && l[1].Template {
		// neither should be assured yet
		for _, x := range l {
			if x.Template && x.State == StateAssured {
				t.Fatal("assured by a request")
			}
		}
	}
	tb.Track(outKeyOf(&c), 0, 0, &c)
	assured := false
	for _, x := range tb.Snapshot(0, nil) {
		if x.Template {
			assured = x.StateName() == "ASSURED"
			if x.Real != ap("10.1.0.1:0") {
				t.Fatalf("PCC template real port %v, want 0", x.Real)
			}
		}
	}
	if !assured {
		t.Fatal("UDP reply did not assure the template")
	}
}

func TestTemplateInvalidation(t *testing.T) {
	tb := newTable(t, 8)
	d := newDest("10.1.0.1", 80, spec.FwdMasq)
	tk := NewTemplateKey(ProtoTCP, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.0.2.1"), 80)
	tb.InsertTemplate(tk, d, time.Minute, 0)
	// Quiesced: still valid by default.
	dq := sched.NewDest(spec.Dest{Addr: netip.MustParseAddr("10.1.0.2"), Port: 80, Weight: 0})
	dq.SetAvailable(true)
	tkq := NewTemplateKey(ProtoTCP, netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("192.0.2.1"), 80)
	tb.InsertTemplate(tkq, dq, time.Minute, 0)
	if _, _, ok := tb.LookupTemplate(tkq, 0); !ok {
		t.Fatal("template of a quiesced dest invalid by default")
	}
	tb.SetExpireQuiescentTemplate(true)
	if _, _, ok := tb.LookupTemplate(tkq, 0); ok {
		t.Fatal("expire_quiescent_template ignored")
	}
	// Unavailable dest: neutralised, a new one can be inserted, the old
	// one still counts until it expires.
	d.SetAvailable(false)
	if _, _, ok := tb.LookupTemplate(tk, 0); ok {
		t.Fatal("template of a removed dest valid")
	}
	d2 := newDest("10.1.0.3", 80, spec.FwdMasq)
	if _, err := tb.InsertTemplate(tk, d2, time.Minute, 0); err != nil {
		t.Fatalf("insert after neutralising: %v", err)
	}
	if _, got, ok := tb.LookupTemplate(tk, 0); !ok || got != d2 {
		t.Fatal("new template not found")
	}
	if d.PersistConns() != 1 || tb.Len() != 3 {
		t.Fatalf("neutralised template: persist %d len %d", d.PersistConns(), tb.Len())
	}
	if n := tb.Reap(2*int64(time.Minute), 8); n != 3 || d.PersistConns() != 0 {
		t.Fatalf("reap removed %d, persist %d", n, d.PersistConns())
	}
}
