package sched

// none is the "none" scheduler: a service created with it has no scheduler
// bound in the kernel, so every new connection gets no destination.
type none struct{}

func newNone(*Options, []*Dest) scheduler { return none{} }

func (none) schedule(*state, *Flow, *Reason) *Dest { return nil }
