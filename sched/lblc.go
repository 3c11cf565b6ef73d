package sched

import (
	"net/netip"
	"sync"
	"time"
)

// Table constants shared by ip_vs_lblc.c and ip_vs_lblcr.c.
const (
	lblcBits        = 10
	lblcBuckets     = 1 << lblcBits           // IP_VS_LBLC_TAB_SIZE
	lblcMaxSize     = lblcBuckets * 16        // tbl->max_size: partial GC above this
	lblcCheckEvery  = int64(60 * time.Second) // CHECK_EXPIRE_INTERVAL
	lblcEntryIdle   = int64(6 * time.Minute)  // ENTRY_TIMEOUT
	lblcFullCounter = 30                      // COUNT_FOR_FULL_EXPIRATION
)

// lblcEntry is one cached address: lblc uses dest, lblcr the replica set
// (most recently inserted first) and lastmod. Times are ns since the epoch.
type lblcEntry struct {
	addr    netip.Addr
	lastuse int64
	dest    *Dest
	set     []*Dest
	lastmod int64
}

// lblcTable is the hash table both schedulers keep, with the kernel's
// periodic garbage collection. All access is under mu (svc->sched_lock; the
// kernel reads under RCU, uvs simply locks).
type lblcTable struct {
	mu      sync.Mutex
	o       *Options
	buckets [lblcBuckets][]lblcEntry
	entries int
	rover   int
	counter int
	next    int64 // next timer expiry
}

func (t *lblcTable) init(o *Options) {
	t.o = o
	t.counter = 1
	t.next = o.now() + lblcCheckEvery
}

func lblcBucket(a netip.Addr) uint32 { return hash32(fold(a), lblcBits) }

func (t *lblcTable) find(b uint32, a netip.Addr) *lblcEntry {
	bk := t.buckets[b]
	for i := range bk {
		if bk[i].addr == a {
			return &bk[i]
		}
	}
	return nil
}

func (t *lblcTable) insert(b uint32, e lblcEntry) {
	t.buckets[b] = append(t.buckets[b], e)
	t.entries++
}

// sweep removes the entries of bucket j idle for at least idle ns and
// returns how many it removed.
func (t *lblcTable) sweep(j int, now, idle int64) int {
	bk := t.buckets[j]
	k := 0
	for i := range bk {
		if now-bk[i].lastuse >= idle {
			continue
		}
		bk[k] = bk[i]
		k++
	}
	clear(bk[k:])
	t.buckets[j] = bk[:k]
	t.entries -= len(bk) - k
	return len(bk) - k
}

// tick is the periodic timer (ip_vs_lblc_check_expire): every 30th run a
// full pass drops entries unused for the expiration time; otherwise, only
// while the table holds more than 16384 entries, a partial pass drops up to
// min((entries-16384)*4/3, 8192) entries idle for 6 minutes, scanning
// buckets round-robin from a rover.
func (t *lblcTable) tick(now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now < t.next {
		return
	}
	t.next = now + lblcCheckEvery
	if t.counter%lblcFullCounter == 0 {
		exp := int64(t.o.LBLCExpiration)
		for j := range t.buckets {
			t.sweep(j, now, exp)
		}
		t.counter = 1
		return
	}
	if t.entries <= lblcMaxSize {
		t.counter++
		return
	}
	goal := min((t.entries-lblcMaxSize)*4/3, lblcMaxSize/2)
	j := t.rover
	for i := 0; i < lblcBuckets; i++ {
		j = (j + 1) & (lblcBuckets - 1)
		goal -= t.sweep(j, now, lblcEntryIdle)
		if goal <= 0 {
			break
		}
	}
	t.rover = j
}

// Len returns the number of cached entries (for tests and listings).
func (t *lblcTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.entries
}

// lblcOverloaded is is_overloaded() of lblc/lblcr, the "2x weight" rule:
// d has more active connections than its weight and some destination of the
// service has fewer than half its weight. The OVERLOAD flag is not looked
// at.
func lblcOverloaded(d *Dest, dests []*Dest) bool {
	if d.ActiveConns() > d.Weight() {
		for _, x := range dests {
			if x.ActiveConns()*2 < x.Weight() {
				return true
			}
		}
	}
	return false
}

// lblc is locality-based least connection (net/netfilter/ipvs/ip_vs_lblc.c).
// The key is the packet's destination address (the VIP for an ordinary
// service, so lblc then acts as a "sticky wlc"). A cached entry's
// destination is used while it is AVAILABLE, has weight > 0 and is not
// overloaded by the 2x-weight rule (OVERLOAD is not checked on this path);
// otherwise wlc picks and the entry is created or replaced. Entries are
// collected by Service.Tick.
type lblc struct {
	lblcTable
}

func newLBLC(o *Options, _ []*Dest) scheduler {
	s := &lblc{}
	s.init(o)
	return s
}

func (s *lblc) schedule(st *state, f *Flow, why *Reason) *Dest {
	now := s.o.now()
	key := f.Dst
	b := lblcBucket(key)
	s.mu.Lock()
	e := s.find(b, key)
	if e != nil {
		e.lastuse = now
		d := e.dest
		if d.Available() && d.Weight() > 0 && !lblcOverloaded(d, st.dests) {
			s.mu.Unlock()
			if why != nil {
				why.Rule = RuleCached
				why.Key = key
			}
			return d
		}
	}
	d := wlcPick(st.dests)
	if d == nil {
		s.mu.Unlock()
		return nil
	}
	if e != nil {
		e.dest = d
	} else {
		s.insert(b, lblcEntry{addr: key, lastuse: now, dest: d})
	}
	s.mu.Unlock()
	if why != nil {
		explainLeast(why, st.dests, d, (*Dest).Overhead, true)
		why.Key = key
		why.Grew = e != nil
	}
	return d
}
