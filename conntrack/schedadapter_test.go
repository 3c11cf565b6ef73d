package conntrack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

// A persistent rr service keeps a client on one destination through the
// table's templates, and the connection links to the template.
func TestSchedTemplatesAdapter(t *testing.T) {
	epoch := time.Unix(1000, 0)
	vip := netip.MustParseAddr("192.0.2.1")
	svc, err := sched.NewService(spec.Service{
		Key:        spec.ServiceKey{Proto: spec.ProtoTCP, Addr: vip, Port: 80},
		Scheduler:  "rr",
		Persistent: true, Timeout: 300, Netmask: 0xffffff00,
	}, sched.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.1.0.1", "10.1.0.2"} {
		if _, err := svc.AddDest(spec.Dest{Addr: netip.MustParseAddr(a), Port: 8080, Fwd: spec.FwdMasq, Weight: 1}); err != nil {
			t.Fatal(err)
		}
	}
	tb := newTable(t, 64)
	ad := NewSchedTemplates(tb, epoch)
	var first *sched.Dest
	for i := range 6 {
		now := epoch.Add(time.Duration(i) * time.Second)
		f := sched.Flow{Proto: spec.ProtoTCP, Src: netip.MustParseAddr("10.0.0.7"), Dst: vip, SrcPort: uint16(2000 + i), DstPort: 80}
		dec := svc.SchedulePersistent(&f, ad, now, nil)
		if dec.Dest == nil {
			t.Fatal("no dest")
		}
		if first == nil {
			first = dec.Dest
		} else if dec.Dest != first {
			t.Fatalf("flow %d went to %v, want %v (persistence)", i, dec.Dest.Addr(), first.Addr())
		}
		h := ad.Handle(dec.Template, now)
		if h == 0 {
			t.Fatal("no template handle")
		}
		in := KeyFrom(ProtoTCP, netip.AddrPortFrom(f.Src, f.SrcPort), netip.AddrPortFrom(vip, 80))
		var c Conn
		if err := tb.Create(&NewConn{In: in, Dest: dec.Dest, Real: EndpointFrom(netip.AddrPortFrom(dec.Dest.Addr(), dec.Port)), Template: h}, TCPSyn, int64(now.Sub(epoch)), &c); err != nil {
			t.Fatal(err)
		}
		if !c.Controlled {
			t.Fatal("not controlled")
		}
	}
	ti, ok := tb.GetTemplate(TemplateKeyOf(sched.TemplateKey{Net: netip.MustParseAddr("10.0.0.0").As16(), VAddr: vip.As16(), VPort: 80, Proto: spec.ProtoTCP}), 0)
	if !ok || ti.NControl != 6 || ti.Dest != first || ti.DPort != 8080 || ti.Timeout != 300*time.Second {
		t.Fatalf("template %+v", ti)
	}
	if first.PersistConns() != 1 || first.ActiveConns() != 6 {
		t.Fatalf("dest counters %v", counters(first))
	}
}
