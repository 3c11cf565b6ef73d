package sched

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Rule names the rule that decided a scheduling outcome, for Reason.
type Rule uint8

// Rules a Reason can report.
const (
	RuleNoDest     Rule = iota // nothing eligible: "no destination available"
	RuleNext                   // rr: next eligible after the cursor (Alt)
	RuleWRR                    // wrr: first after the cursor with weight >= cw (Load = cw)
	RuleLeast                  // lc/wlc/sed/nq/lblc/lblcr: smallest (weighted) load; Alt = runner-up
	RuleIdle                   // nq: first eligible destination with no active connection
	RuleHighest                // fo/ovf: highest weight; Alt = runner-up
	RuleBucket                 // sh/dh/mh: hash bucket (Bucket of Buckets); Probes > 0 after fallback
	RuleBucketDown             // sh/dh/mh: the bucket's destination is unavailable (or the table empty)
	RuleCached                 // lblc/lblcr: cached destination for Key
	RuleTwoChoices             // twos: better of two weighted random picks; Alt = the other pick
)

// Reason explains one decision. It is a fixed-size value filled with
// numbers on request (ScheduleWhy, SchedulePersistent with a non-nil why)
// and only formatted by String, so asking costs no allocation.
type Reason struct {
	Sched  SchedID
	Rule   Rule
	Found  bool           // a destination was chosen
	Dest   netip.AddrPort // the chosen destination
	NDests int32          // destinations in the service

	HasAlt    bool           // Alt is set
	Alt       netip.AddrPort // runner-up, previous cursor or the other choice
	Load      int64          // chosen: overhead (or cw for wrr, or r1 for twos)
	Weight    int64          // chosen: weight
	AltLoad   int64          // runner-up: overhead (r2 for twos)
	AltWeight int64          // runner-up: weight

	Key     netip.Addr // hashed or cached address
	KeyPort uint16     // hashed port (sh-port/mh-port)
	Bucket  int32      // bucket or slot index
	Buckets int32      // table size
	Probes  int32      // fallback probes made
	Grew    bool       // lblc: entry replaced / lblcr: set grew by wlc
	SetSize int32      // lblcr: replica set size

	// Persistence (SchedulePersistent).
	Persist     bool          // the service is persistent
	FromTmpl    bool          // an existing template decided
	TmplNet     netip.Prefix  // client network of the template
	TmplMark    uint32        // fwmark of a PFWMC template
	TmplVPort   uint16        // template vport
	TmplExpires time.Duration // time left on the template
}

func (r *Reason) setDest(d *Dest) {
	if d != nil {
		r.Found = true
		r.Dest = d.AddrPort()
	}
}

func (r *Reason) alt(d *Dest, load, weight int64) {
	r.HasAlt = true
	r.Alt = d.AddrPort()
	r.AltLoad = load
	r.AltWeight = weight
}

// String formats the reason as one line, e.g.
// "wlc chose 10.0.0.7:80: overhead 512/w1 < 768/w1 (10.0.0.8:80)".
func (r *Reason) String() string {
	var b strings.Builder
	if r.Persist {
		b.WriteString("persistence: ")
		if r.FromTmpl {
			b.WriteString("template ")
			r.tmpl(&b)
			b.WriteString(" -> ")
			b.WriteString(r.Dest.String())
			b.WriteString(" (expires in ")
			b.WriteString(r.TmplExpires.Round(time.Second).String())
			b.WriteString(")")
			return b.String()
		}
		if r.Found {
			b.WriteString("new template ")
			r.tmpl(&b)
			b.WriteString("; ")
		} else {
			b.WriteString("no template; ")
		}
	}
	name := r.Sched.String()
	if !r.Found {
		b.WriteString(name)
		b.WriteString(": no destination available")
		switch r.Rule {
		case RuleBucketDown:
			b.WriteString(": bucket ")
			b.WriteString(itoa(int64(r.Bucket)))
			b.WriteString(" of ")
			b.WriteString(itoa(int64(r.Buckets)))
			if r.HasAlt {
				b.WriteString(" holds unavailable ")
				b.WriteString(r.Alt.String())
			} else {
				b.WriteString(" is empty")
			}
			r.key(&b)
		default:
			b.WriteString(" (")
			b.WriteString(itoa(int64(r.NDests)))
			b.WriteString(" dests, none eligible)")
		}
		return b.String()
	}
	b.WriteString(name)
	b.WriteString(" chose ")
	b.WriteString(r.Dest.String())
	b.WriteString(": ")
	switch r.Rule {
	case RuleNext:
		if r.HasAlt {
			b.WriteString("next after ")
			b.WriteString(r.Alt.String())
		} else {
			b.WriteString("first eligible in list")
		}
	case RuleWRR:
		b.WriteString("weight ")
		b.WriteString(itoa(r.Weight))
		b.WriteString(" >= cw ")
		b.WriteString(itoa(r.Load))
	case RuleLeast:
		r.least(&b)
	case RuleIdle:
		b.WriteString("first with no active connection")
	case RuleHighest:
		b.WriteString("highest weight ")
		b.WriteString(itoa(r.Weight))
		if r.HasAlt {
			b.WriteString(" > ")
			b.WriteString(itoa(r.AltWeight))
			b.WriteString(" (")
			b.WriteString(r.Alt.String())
			b.WriteString(")")
		}
	case RuleBucket:
		b.WriteString("bucket ")
		b.WriteString(itoa(int64(r.Bucket)))
		b.WriteString(" of ")
		b.WriteString(itoa(int64(r.Buckets)))
		if r.Probes > 0 {
			b.WriteString(" after ")
			b.WriteString(itoa(int64(r.Probes)))
			b.WriteString(" fallback probes")
		}
		r.key(&b)
	case RuleCached:
		b.WriteString("cached for ")
		b.WriteString(r.Key.String())
		if r.SetSize > 0 {
			b.WriteString(", least loaded of ")
			b.WriteString(itoa(int64(r.SetSize)))
			b.WriteString(" in set")
		}
	case RuleTwoChoices:
		b.WriteString("overhead ")
		b.WriteString(itoa(r.Load))
		b.WriteString("/w")
		b.WriteString(itoa(r.Weight))
		if r.HasAlt {
			b.WriteString(" vs ")
			b.WriteString(itoa(r.AltLoad))
			b.WriteString("/w")
			b.WriteString(itoa(r.AltWeight))
			b.WriteString(" (")
			b.WriteString(r.Alt.String())
			b.WriteString(")")
		}
	}
	return b.String()
}

func (r *Reason) least(b *strings.Builder) {
	if r.Sched == SchedLBLC || r.Sched == SchedLBLCR {
		if r.Grew {
			b.WriteString("cached choice for ")
			b.WriteString(r.Key.String())
			b.WriteString(" overloaded; ")
		} else {
			b.WriteString("new entry for ")
			b.WriteString(r.Key.String())
			b.WriteString("; ")
		}
	}
	weighted := r.Sched != SchedLC
	b.WriteString("overhead ")
	b.WriteString(itoa(r.Load))
	if weighted {
		b.WriteString("/w")
		b.WriteString(itoa(r.Weight))
	}
	if !r.HasAlt {
		b.WriteString(", only candidate")
		return
	}
	lw, aw := r.Weight, r.AltWeight
	if !weighted {
		lw, aw = 1, 1
	}
	if r.Load*aw < r.AltLoad*lw {
		b.WriteString(" < ")
	} else {
		b.WriteString(" <= ") // tie: the earlier in list order wins
	}
	b.WriteString(itoa(r.AltLoad))
	if weighted {
		b.WriteString("/w")
		b.WriteString(itoa(r.AltWeight))
	}
	b.WriteString(" (")
	b.WriteString(r.Alt.String())
	b.WriteString(")")
}

func (r *Reason) key(b *strings.Builder) {
	b.WriteString(" (")
	if r.Sched == SchedDH {
		b.WriteString("dst ")
	} else {
		b.WriteString("src ")
	}
	b.WriteString(r.Key.String())
	if r.KeyPort != 0 {
		b.WriteString(" port ")
		b.WriteString(itoa(int64(r.KeyPort)))
	}
	b.WriteString(")")
}

func (r *Reason) tmpl(b *strings.Builder) {
	if r.TmplMark != 0 {
		b.WriteString("fwmark ")
		b.WriteString(itoa(int64(r.TmplMark)))
		b.WriteString(" ")
	}
	b.WriteString(r.TmplNet.String())
	if r.TmplVPort != 0 {
		b.WriteString(" port ")
		b.WriteString(itoa(int64(r.TmplVPort)))
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
