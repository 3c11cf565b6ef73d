package director

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"

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

// refreshMarks re-reads the namespace's prerouting rules — iptables and
// ip6tables mangle PREROUTING (iptables-save) and the native nftables base
// chains hooked at prerouting (netlink) — and, when they changed, compiles
// a new classifier. uvsd sees frames before netfilter, so it evaluates the
// MARK rules itself. It reports whether anything changed.
func (d *Director) refreshMarks(ctx context.Context) bool {
	if !d.hasFWMark() {
		return false
	}
	var errs []error
	t, err := fwmark.Read(ctx, fwmark.ExecRunner)
	if errors.Is(err, exec.ErrNotFound) {
		// An nft-only host: its rules are read below.
		errs = append(errs, err)
		t, err = fwmark.Tables{}, nil
	}
	if err != nil {
		errs = append(errs, err)
	}
	n, nerr := fwmark.ReadNft(nil)
	if errors.Is(nerr, fwmark.ErrNftUnsupported) {
		n, nerr = nil, nil
	}
	if nerr != nil {
		errs = append(errs, nerr)
	}
	if msg := errors.Join(errs...); msg != nil {
		if d.markErr != msg.Error() {
			d.log.Warn("reading the prerouting rules for firewall-mark services", zap.Error(msg))
			d.markErr = msg.Error()
		}
		if err != nil || nerr != nil {
			return false
		}
	} else {
		d.markErr = ""
	}
	t.Nft = n.Key()
	if t == d.markTables && d.marks.Load() != nil {
		return false
	}
	ifaces := map[string]int{}
	for _, ifc := range d.host.Load().Ifaces {
		ifaces[ifc.Name] = ifc.Index
	}
	ipt4, u4, err := fwmark.ParseFamily(t.IPv4, false)
	if err != nil {
		d.log.Error("parsing the mangle table", zap.String("family", "ipv4"), zap.Error(err))
		return false
	}
	ipt6, u6, err := fwmark.ParseFamily(t.IPv6, true)
	if err != nil {
		d.log.Error("parsing the mangle table", zap.String("family", "ipv6"), zap.Error(err))
		return false
	}
	m := fwmark.Merge(ipt4, ipt6, t, n)
	c := fwmark.Compile(m.V4, m.V6, ifaces)
	unsupported := slices.Concat(u4, u6, m.Unsupported)
	for _, u := range unsupported {
		d.log.Warn("prerouting rule uvsd cannot evaluate (ignored: frames it would mark get no mark)",
			zap.String("rule", u.String()))
	}
	var targets []markTarget
	for _, r := range slices.Concat(m.Marks4, m.Marks6) {
		addrs := markAddrs(r)
		if len(addrs) == 0 {
			d.log.Warn("MARK rule without a single destination address: uvsd's packet filter cannot select its traffic",
				zap.String("rule", markRuleText(r)))
			continue
		}
		mt := markTarget{mark: r.Value}
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
		for _, a := range addrs {
			mt.addr = a
			targets = append(targets, mt)
		}
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

// markAddrs returns the destination address of a MARK rule when it names
// a single host: uvsd answers ARP for it and hooks its traffic, which it
// must not do for a whole prefix of other hosts' addresses. (The nft
// reader gives a small range of a set's VIPs as single addresses.)
func markAddrs(r fwmark.Rule) []netip.Addr {
	if r.Verdict != fwmark.VerdictMark || !r.Dst.IsValid() || r.DstNeg || r.DstMask.IsValid() || !r.Dst.IsSingleIP() {
		return nil
	}
	return []netip.Addr{r.Dst.Addr()}
}

func markRuleText(r fwmark.Rule) string {
	if r.Text != "" {
		return r.Text
	}
	return fmt.Sprintf("%+v", r)
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
