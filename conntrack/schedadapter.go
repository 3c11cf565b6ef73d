package conntrack

import (
	"time"

	"github.com/uvs-lb/uvs/sched"
)

// TemplateKeyOf converts the scheduler's template key to a table key. Both
// store IPv4 IPv4-mapped and a fwmark as the IPv4 address of its value.
func TemplateKeyOf(k sched.TemplateKey) Key {
	return Key{Src: k.Net, Dst: k.VAddr, DstPort: k.VPort, Proto: uint8(k.Proto)}
}

// SchedTemplates adapts a Table to sched.Templates, so that
// sched.Service.SchedulePersistent keeps its templates in the connection
// table. The scheduler passes time.Time values; they are mapped onto the
// table's clock as now.Sub(epoch), so epoch must be the instant the data
// plane's clock reads 0.
type SchedTemplates struct {
	t     *Table
	epoch time.Time
}

var _ sched.Templates = (*SchedTemplates)(nil)

// NewSchedTemplates returns the adapter.
func NewSchedTemplates(t *Table, epoch time.Time) *SchedTemplates {
	return &SchedTemplates{t: t, epoch: epoch}
}

func (a *SchedTemplates) clock(now time.Time) int64 { return int64(now.Sub(a.epoch)) }

// Lookup implements sched.Templates: the live template for k, neither
// validated nor re-armed.
func (a *SchedTemplates) Lookup(k sched.TemplateKey, now time.Time) (sched.Template, bool) {
	ti, ok := a.t.GetTemplate(TemplateKeyOf(k), a.clock(now))
	if !ok {
		return sched.Template{}, false
	}
	return sched.Template{
		Dest: ti.Dest, DPort: ti.DPort, Timeout: ti.Timeout,
		Expires: a.epoch.Add(time.Duration(ti.Expires)),
	}, true
}

// Insert implements sched.Templates. Insert has no error result: when the
// table is full the template is not stored (the connection is still
// scheduled, it just does not persist), and when another worker inserted
// the same key first that template is kept.
func (a *SchedTemplates) Insert(k sched.TemplateKey, tm sched.Template) {
	now := a.clock(tm.Expires.Add(-tm.Timeout))
	_, _ = a.t.insertTemplate(TemplateKeyOf(k), tm.Dest, tm.DPort, tm.Timeout, now)
}

// Touch implements sched.Templates.
func (a *SchedTemplates) Touch(k sched.TemplateKey, now time.Time) {
	a.t.TouchTemplate(TemplateKeyOf(k), a.clock(now))
}

// Invalidate implements sched.Templates.
func (a *SchedTemplates) Invalidate(k sched.TemplateKey, now time.Time) {
	a.t.InvalidateTemplate(TemplateKeyOf(k), a.clock(now))
}

// Handle returns the handle of the template for k, for NewConn.Template
// after a persistent scheduling decision (0 if there is none).
func (a *SchedTemplates) Handle(k sched.TemplateKey, now time.Time) Handle {
	ti, ok := a.t.GetTemplate(TemplateKeyOf(k), a.clock(now))
	if !ok {
		return 0
	}
	return ti.Handle
}
