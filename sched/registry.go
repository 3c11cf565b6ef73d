package sched

// SchedID identifies a scheduler in the registry (and in a Reason).
type SchedID uint8

// Scheduler identifiers, in ipvsadm's order (ipvsadm.8 -s), then twos and
// none.
const (
	SchedNone SchedID = iota
	SchedRR
	SchedWRR
	SchedLC
	SchedWLC
	SchedLBLC
	SchedLBLCR
	SchedDH
	SchedSH
	SchedSED
	SchedNQ
	SchedFO
	SchedOVF
	SchedMH
	SchedTwoS
	numSched
)

// schedFactory creates a scheduler bound to a service whose destinations
// are dests (the kernel's init_service hook, run on service creation and
// whenever the service is edited to another scheduler).
type schedFactory func(o *Options, dests []*Dest) scheduler

// registry is the single name table: ipvsadm name → factory. It is indexed
// by SchedID and never modified.
var registry = [numSched]struct {
	name string
	new  schedFactory
}{
	SchedNone:  {"none", newNone},
	SchedRR:    {"rr", newRR},
	SchedWRR:   {"wrr", newWRR},
	SchedLC:    {"lc", newLC},
	SchedWLC:   {"wlc", newWLC},
	SchedLBLC:  {"lblc", newLBLC},
	SchedLBLCR: {"lblcr", newLBLCR},
	SchedDH:    {"dh", newDH},
	SchedSH:    {"sh", newSH},
	SchedSED:   {"sed", newSED},
	SchedNQ:    {"nq", newNQ},
	SchedFO:    {"fo", newFO},
	SchedOVF:   {"ovf", newOVF},
	SchedMH:    {"mh", newMH},
	SchedTwoS:  {"twos", newTwoS},
}

// Names returns the ipvsadm names of every scheduler, in ipvsadm's order
// (rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos). "none" is
// accepted by NewService but, as in ipvsadm, not listed.
func Names() []string {
	out := make([]string, 0, numSched-1)
	for id := SchedRR; id < numSched; id++ {
		out = append(out, registry[id].name)
	}
	return out
}

// LookupScheduler returns the id of a scheduler name ("none" included).
func LookupScheduler(name string) (SchedID, bool) {
	for id := SchedNone; id < numSched; id++ {
		if registry[id].name == name {
			return id, true
		}
	}
	return 0, false
}

// String returns the ipvsadm name.
func (id SchedID) String() string {
	if id < numSched {
		return registry[id].name
	}
	return "?"
}

// scheduler is the one required method of every scheduler: pick a
// destination among st.dests for a new flow, or nil. why is nil unless the
// caller asked for an explanation; filling it must be the only extra work.
type scheduler interface {
	schedule(st *state, f *Flow, why *Reason) *Dest
}

// The optional hooks (struct ip_vs_scheduler add_dest / del_dest /
// upd_dest). They run on the control path, under the service mutex, after
// the change, with the new list; they return the scheduler to publish
// (table-based schedulers build a new immutable value, stateful ones
// update themselves under their own lock and return themselves).
type (
	addHook interface {
		onAdd(o *Options, dests []*Dest, d *Dest) scheduler
	}
	delHook interface {
		// idx is the position d had in the old list.
		onDel(o *Options, dests []*Dest, d *Dest, idx int) scheduler
	}
	updHook interface {
		onUpdate(o *Options, dests []*Dest, d *Dest) scheduler
	}
	// ticker is implemented by schedulers with timers (lblc, lblcr GC).
	ticker interface {
		tick(now int64)
	}
)
