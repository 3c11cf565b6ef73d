package director

import (
	"context"
	"net/netip"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/fwmark"
	"github.com/uvs-lb/uvs/ownership"
	"github.com/uvs-lb/uvs/spec"
)

// markTarget is what one mangle PREROUTING MARK rule sends to a mark: a
// destination host, a protocol (0: any) and destination ports (none: any).
type markTarget struct {
	mark  uint32
	addr  netip.Addr
	proto spec.Proto
	ports []uint16
}

// refreshMarks re-reads the namespace's mangle PREROUTING rules (iptables
// and ip6tables) and, when they changed, compiles a new classifier. uvsd
// sees frames before netfilter, so it evaluates the MARK rules itself.
// It reports whether anything changed.
func (d *Director) refreshMarks(ctx context.Context) bool {
	if !d.hasFWMark() {
		return false
	}
	t, err := fwmark.Read(ctx, fwmark.ExecRunner)
	if err != nil {
		if d.markErr == "" || d.markErr != err.Error() {
			d.log.Warn("reading the mangle table for firewall-mark services", zap.Error(err))
			d.markErr = err.Error()
		}
		return false
	}
	d.markErr = ""
	if t == d.markTables && d.marks.Load() != nil {
		return false
	}
	ifaces := map[string]int{}
	for _, ifc := range d.host.Load().Ifaces {
		ifaces[ifc.Name] = ifc.Index
	}
	c, unsupported, err := fwmark.Parse(t, ifaces)
	if err != nil {
		d.log.Error("parsing the mangle table", zap.Error(err))
		return false
	}
	for _, u := range unsupported {
		d.log.Warn("mangle rule uvsd cannot evaluate (ignored: frames it would mark get no mark)",
			zap.String("rule", u.String()))
	}
	v4, _, _ := fwmark.ParseFamily(t.IPv4, false)
	v6, _, _ := fwmark.ParseFamily(t.IPv6, true)
	var targets []markTarget
	for _, r := range append(v4, v6...) {
		if r.Verdict != fwmark.VerdictMark || !r.Dst.IsValid() || r.DstNeg || !r.Dst.IsSingleIP() {
			if r.Verdict == fwmark.VerdictMark {
				d.log.Warn("MARK rule without a single destination address: uvsd's packet filter cannot select its traffic",
					zap.String("rule", r.Text))
			}
			continue
		}
		mt := markTarget{mark: r.Value, addr: r.Dst.Addr()}
		if r.HasProto && !r.ProtoNeg {
			mt.proto = spec.Proto(r.Proto)
		}
		for _, pm := range r.Ports {
			if pm.Dir != fwmark.PortDst || pm.Neg {
				continue
			}
			for _, pr := range pm.Ranges {
				if pr.Hi-pr.Lo < 64 {
					for p := uint32(pr.Lo); p <= uint32(pr.Hi); p++ {
						mt.ports = append(mt.ports, uint16(p))
					}
				}
			}
		}
		targets = append(targets, mt)
	}
	d.markTables = t
	d.markTargets.Store(&targets)
	d.marks.Store(c)
	if err := d.refreshHost(); err != nil {
		d.log.Warn("refreshing interfaces", zap.Error(err))
	}
	d.log.Info("firewall-mark rules loaded", zap.Int("rules", len(targets)), zap.Int("unsupported", len(unsupported)))
	return true
}

func (d *Director) hasFWMark() bool {
	for _, s := range d.State.Services() {
		if s.Config.Key.IsFWMark() {
			return true
		}
	}
	return false
}

// markInput returns the targets of the MARK rules for ownership.Compute,
// which keeps those of the firewall-mark services' marks.
func (d *Director) markInput() []ownership.MarkTarget {
	p := d.markTargets.Load()
	if p == nil {
		return nil
	}
	out := make([]ownership.MarkTarget, 0, len(*p))
	for _, mt := range *p {
		out = append(out, ownership.MarkTarget{Mark: mt.mark, Addr: mt.addr, Proto: mt.proto, Ports: mt.ports})
	}
	return out
}
