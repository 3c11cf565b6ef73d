package neigh

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/internal/netnsdo"
)

// maxConcurrent bounds the resolutions running at once.
const maxConcurrent = 16

// Resolver keeps next hops resolved. Lookup, Prefetch and Forget are safe for
// concurrent use.
type Resolver struct {
	opts  Options
	nl    *netlink.Handle
	table atomic.Pointer[map[netip.Addr]Hop]
	// gen counts the table's changes (Generation): bumped after each
	// store of a table that differs from the one before.
	gen atomic.Uint64

	mu       sync.Mutex // guards everything below and every table store
	closed   bool
	pending  map[netip.Addr]struct{}   // resolutions in flight
	wanted   map[netip.Addr]struct{}   // destinations kept resolved
	failed   map[netip.Addr]time.Time  // last failed resolution
	nexthops map[netip.Addr]struct{}   // next-hop addresses of the table
	resolved map[netip.Addr]netip.Addr // destination -> next hop
	hidden   map[int]int               // ifindex -> Hide calls not undone

	kick chan struct{}
	done chan struct{}
	sem  chan struct{}
	wg   sync.WaitGroup
}

// New opens a netlink handle in opts.NetNS, subscribes to neighbour and route
// changes and starts the refresh loop.
func New(opts Options) (*Resolver, error) {
	opts.defaults()
	var nl *netlink.Handle
	var err error
	if opts.NetNS > 0 {
		nl, err = netlink.NewHandleAt(opts.NetNS)
	} else {
		nl, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("neigh: netlink: %w", err)
	}
	r := &Resolver{
		opts:     opts,
		nl:       nl,
		pending:  map[netip.Addr]struct{}{},
		wanted:   map[netip.Addr]struct{}{},
		failed:   map[netip.Addr]time.Time{},
		nexthops: map[netip.Addr]struct{}{},
		resolved: map[netip.Addr]netip.Addr{},
		hidden:   map[int]int{},
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		sem:      make(chan struct{}, maxConcurrent),
	}
	empty := map[netip.Addr]Hop{}
	r.table.Store(&empty)

	neighCh := make(chan netlink.NeighUpdate, 64)
	routeCh := make(chan netlink.RouteUpdate, 64)
	var ns *netns.NsHandle
	if opts.NetNS > 0 {
		ns = &opts.NetNS
	}
	onErr := func(error) { r.kickRefresh() }
	if err := netlink.NeighSubscribeWithOptions(neighCh, r.done, netlink.NeighSubscribeOptions{Namespace: ns, ErrorCallback: onErr}); err != nil {
		close(r.done)
		nl.Close()
		return nil, fmt.Errorf("neigh: subscribe neighbours: %w", err)
	}
	if err := netlink.RouteSubscribeWithOptions(routeCh, r.done, netlink.RouteSubscribeOptions{Namespace: ns, ErrorCallback: onErr}); err != nil {
		close(r.done)
		nl.Close()
		return nil, fmt.Errorf("neigh: subscribe routes: %w", err)
	}
	r.wg.Add(2)
	go r.events(neighCh, routeCh)
	go r.refreshLoop()
	return r, nil
}

// Lookup returns the next hop of dst if it is resolved. On a miss it returns
// false and starts resolving dst in the background. A hit takes no lock and
// allocates nothing. dst must be in its canonical form (IPv4 unmapped).
func (r *Resolver) Lookup(dst netip.Addr) (Hop, bool) {
	if h, ok := (*r.table.Load())[dst]; ok {
		return h, true
	}
	r.miss(dst, false)
	return Hop{}, false
}

// Peek is Lookup without starting a resolution on a miss: for a
// destination that may be a spoofed address, whose resolution would be
// wasted (the replies of a flow whose client has sent one packet).
func (r *Resolver) Peek(dst netip.Addr) (Hop, bool) {
	h, ok := (*r.table.Load())[dst]
	return h, ok
}

// Prefetch starts resolving addrs (the configured real servers, say) so that
// the first packets to them usually hit, and keeps them refreshed.
func (r *Resolver) Prefetch(addrs ...netip.Addr) {
	for _, a := range addrs {
		r.miss(a.Unmap(), true)
	}
}

// Forget stops keeping addrs resolved and drops them from the table.
func (r *Resolver) Forget(addrs ...netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := *r.table.Load()
	next := maps.Clone(cur)
	for _, a := range addrs {
		a = a.Unmap()
		delete(r.wanted, a)
		delete(r.failed, a)
		delete(next, a)
		delete(r.resolved, a)
	}
	r.storeLocked(next)
}

// Resolve resolves dst synchronously (bounded by Options.ResolveTimeout),
// publishes the result for Lookup and returns it.
func (r *Resolver) Resolve(dst netip.Addr) (Hop, error) {
	dst = dst.Unmap()
	h, nh, err := r.resolveWait(dst)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return Hop{}, ErrClosed
	}
	if err != nil {
		return Hop{}, fmt.Errorf("neigh: resolve %s: %w", dst, err)
	}
	r.wanted[dst] = struct{}{}
	r.publishLocked(dst, h, nh)
	return h, nil
}

// Close stops the background work and releases the netlink handle.
func (r *Resolver) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	r.mu.Unlock()
	r.wg.Wait()
	r.nl.Close()
	return nil
}

// miss starts one background resolution of dst unless one is running, dst
// failed recently or the table is full.
func (r *Resolver) miss(dst netip.Addr, prefetch bool) {
	if !dst.IsValid() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if _, ok := r.pending[dst]; ok {
		return
	}
	if _, ok := r.wanted[dst]; !ok && len(r.wanted) >= r.opts.MaxEntries {
		return
	}
	if t, ok := r.failed[dst]; ok && !prefetch && time.Since(t) < r.opts.RetryAfter {
		return
	}
	r.wanted[dst] = struct{}{}
	if _, ok := (*r.table.Load())[dst]; ok {
		return // prefetch of a destination already resolved
	}
	r.pending[dst] = struct{}{}
	r.wg.Add(1)
	go r.resolveAsync(dst)
}

func (r *Resolver) resolveAsync(dst netip.Addr) {
	defer r.wg.Done()
	select {
	case r.sem <- struct{}{}:
	case <-r.done:
		return
	}
	h, nh, err := r.resolveWait(dst)
	<-r.sem
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, dst)
	if _, ok := r.wanted[dst]; !ok || r.closed {
		return // forgotten meanwhile
	}
	if err != nil {
		r.failed[dst] = time.Now()
		return
	}
	delete(r.failed, dst)
	r.publishLocked(dst, h, nh)
}

// publishLocked adds one hop to a copy of the table and stores it.
func (r *Resolver) publishLocked(dst netip.Addr, h Hop, nh netip.Addr) {
	next := maps.Clone(*r.table.Load())
	next[dst] = h
	r.resolved[dst] = nh
	r.storeLocked(next)
}

func (r *Resolver) storeLocked(m map[netip.Addr]Hop) {
	clear(r.nexthops)
	for d := range m {
		r.nexthops[r.resolved[d]] = struct{}{}
	}
	if cur := r.table.Load(); cur != nil && maps.Equal(*cur, m) {
		return // a refresh that changed nothing: the readers' caches stay
	}
	r.table.Store(&m)
	// After the store: a reader that sees the new generation sees the new
	// table (one that fills a cache from the new table under the old
	// generation only drops it a batch early).
	r.gen.Add(1)
}

// Generation returns a number that changes whenever Lookup may answer
// differently than before (a hop added, changed or removed). A reader that
// caches Lookup's answers checks it before using them: answers taken after
// it read generation g are valid as long as Generation still returns g.
// It takes no lock and allocates nothing.
func (r *Resolver) Generation() uint64 { return r.gen.Load() }

// usable reports whether a neighbour state carries a link-layer address that
// may be used to send.
func usable(state int) bool {
	return state&(unix.NUD_REACHABLE|unix.NUD_STALE|unix.NUD_DELAY|unix.NUD_PROBE|unix.NUD_PERMANENT|unix.NUD_NOARP) != 0
}

// route finds the egress interface, the next-hop address and the source
// address for dst. local is set for a local route (RTN_LOCAL): dst is one
// of the director's own addresses, reached through no interface; nh is dst
// and src is unset.
func (r *Resolver) route(dst netip.Addr) (ifindex int, nh, src netip.Addr, local bool, err error) {
	routes, err := r.nl.RouteGet(dst.AsSlice())
	if err != nil {
		return 0, nh, src, false, fmt.Errorf("route: %w", err)
	}
	if len(routes) == 0 {
		return 0, nh, src, false, errors.New("route: none")
	}
	rt := routes[0]
	src, _ = netip.AddrFromSlice(rt.Src)
	if rt.Type == unix.RTN_LOCAL {
		return 0, dst, netip.Addr{}, true, nil
	}
	nh = dst
	if g, ok := netip.AddrFromSlice(rt.Gw); ok && !g.IsUnspecified() {
		nh = g.Unmap()
	}
	return rt.LinkIndex, nh, src.Unmap(), false, nil
}

// query builds the hop of dst from the kernel's tables. ok is false when the
// next hop's neighbour entry is missing or unusable.
func (r *Resolver) query(dst netip.Addr, neighs map[neighKey]netlink.Neigh) (h Hop, nh netip.Addr, state int, ok bool, err error) {
	ifindex, nh, src, local, err := r.route(dst)
	if err != nil {
		return h, nh, 0, false, err
	}
	if local {
		// The director's own address: delivered to its own stack, no
		// link-layer next hop (LOCALNODE). No source address either:
		// nothing is sent from one (and the director takes the source
		// of a FULLNAT real server's hop as a local address to own).
		return Hop{Local: true}, nh, unix.NUD_NOARP, true, nil
	}
	link, err := r.nl.LinkByIndex(ifindex)
	if err != nil {
		return h, nh, 0, false, fmt.Errorf("link %d: %w", ifindex, err)
	}
	la := link.Attrs()
	if la.Flags&net.FlagLoopback != 0 {
		return h, nh, 0, false, ErrLocal
	}
	h = Hop{Ifindex: ifindex, Src: src}
	if len(la.HardwareAddr) != 6 || la.RawFlags&unix.IFF_NOARP != 0 {
		copy(h.SrcMAC[:], la.HardwareAddr)
		return h, nh, unix.NUD_NOARP, true, nil // no link-layer next hop to resolve
	}
	copy(h.SrcMAC[:], la.HardwareAddr)
	var n netlink.Neigh
	if neighs != nil {
		n, ok = neighs[neighKey{ifindex, nh}]
	} else {
		n, ok, err = r.neighbour(ifindex, nh)
		if err != nil {
			return h, nh, 0, false, err
		}
	}
	if !ok || !usable(n.State) || len(n.HardwareAddr) != 6 {
		return h, nh, n.State, false, nil
	}
	copy(h.DstMAC[:], n.HardwareAddr)
	return h, nh, n.State, true, nil
}

type neighKey struct {
	ifindex int
	addr    netip.Addr
}

func family(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func (r *Resolver) neighbour(ifindex int, nh netip.Addr) (netlink.Neigh, bool, error) {
	ns, err := r.nl.NeighList(ifindex, family(nh))
	if err != nil {
		return netlink.Neigh{}, false, fmt.Errorf("neighbours: %w", err)
	}
	for _, n := range ns {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == nh {
			return n, true, nil
		}
	}
	return netlink.Neigh{}, false, nil
}

// neighbours dumps the whole neighbour table once, for a refresh.
func (r *Resolver) neighbours() (map[neighKey]netlink.Neigh, error) {
	m := map[neighKey]netlink.Neigh{}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		ns, err := r.nl.NeighList(0, fam)
		if err != nil {
			return nil, fmt.Errorf("neighbours: %w", err)
		}
		for _, n := range ns {
			if a, ok := netip.AddrFromSlice(n.IP); ok {
				m[neighKey{n.LinkIndex, a.Unmap()}] = n
			}
		}
	}
	return m, nil
}

// trigger asks the kernel to resolve (or re-confirm) nh on ifindex:
// RTM_NEWNEIGH with NTF_USE runs neigh_event_send as if the stack were
// sending to it. If the kernel refuses, a zero-length UDP datagram to the
// discard port from inside the namespace has the same effect.
func (r *Resolver) trigger(ifindex int, nh netip.Addr) {
	err := r.nl.NeighSet(&netlink.Neigh{
		LinkIndex: ifindex,
		Family:    family(nh),
		IP:        nh.AsSlice(),
		Flags:     unix.NTF_USE,
	})
	if err == nil {
		return
	}
	_ = inNetNS(r.opts.NetNS, func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(nh, 9)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(nil)
		return err
	})
}

// resolveWait resolves dst, asking the kernel to resolve its next hop if
// needed and polling with back-off until it is usable or the timeout ends.
func (r *Resolver) resolveWait(dst netip.Addr) (Hop, netip.Addr, error) {
	deadline := time.Now().Add(r.opts.ResolveTimeout)
	wait := 5 * time.Millisecond
	triggered := false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		h, nh, _, ok, err := r.query(dst, nil)
		if err != nil {
			return Hop{}, nh, err
		}
		if ok {
			return h, nh, nil
		}
		if !triggered {
			r.trigger(h.Ifindex, nh)
			triggered = true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return Hop{}, nh, ErrTimeout
		}
		timer.Reset(min(wait, left))
		select {
		case <-r.done:
			return Hop{}, nh, ErrClosed
		case <-timer.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

func (r *Resolver) kickRefresh() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// events turns neighbour changes of a next hop in use, and every route
// change, into a refresh.
func (r *Resolver) events(neighCh <-chan netlink.NeighUpdate, routeCh <-chan netlink.RouteUpdate) {
	defer r.wg.Done()
	for {
		select {
		case <-r.done:
			return
		case u, ok := <-neighCh:
			if !ok {
				neighCh = nil
				continue
			}
			a, aok := netip.AddrFromSlice(u.IP)
			if !aok {
				continue
			}
			r.mu.Lock()
			_, used := r.nexthops[a.Unmap()]
			r.mu.Unlock()
			if used {
				r.kickRefresh()
			}
		case _, ok := <-routeCh:
			if !ok {
				routeCh = nil
				continue
			}
			r.kickRefresh()
		}
	}
}

// refreshLoop refreshes every destination periodically and on a kick.
func (r *Resolver) refreshLoop() {
	defer r.wg.Done()
	t := time.NewTicker(r.opts.Refresh)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		case <-r.kick:
		}
		r.refresh()
	}
}

// refresh re-reads the hop of every wanted destination. Usable hops replace
// the old ones; destinations whose next hop became unusable leave the table
// and are resolved again. Next hops the kernel only holds as STALE are
// re-confirmed, since uvsd's own frames never do that for the kernel.
func (r *Resolver) refresh() {
	r.mu.Lock()
	dsts := make([]netip.Addr, 0, len(r.wanted))
	for d := range r.wanted {
		if _, busy := r.pending[d]; !busy {
			dsts = append(dsts, d)
		}
	}
	r.mu.Unlock()
	if len(dsts) == 0 {
		return
	}
	neighs, err := r.neighbours()
	if err != nil {
		return // next tick
	}
	type result struct {
		h  Hop
		nh netip.Addr
		ok bool
	}
	res := make(map[netip.Addr]result, len(dsts))
	for _, d := range dsts {
		h, nh, state, ok, err := r.query(d, neighs)
		if err == nil && state&unix.NUD_STALE != 0 {
			r.trigger(h.Ifindex, nh)
		}
		res[d] = result{h, nh, ok && err == nil}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	next := maps.Clone(*r.table.Load())
	var again []netip.Addr
	for d, x := range res {
		if _, ok := r.wanted[d]; !ok {
			continue
		}
		if x.ok {
			next[d] = x.h
			r.resolved[d] = x.nh
		} else {
			delete(next, d)
			delete(r.resolved, d)
			again = append(again, d)
		}
	}
	r.storeLocked(next)
	for _, d := range again {
		if _, ok := r.pending[d]; !ok {
			r.pending[d] = struct{}{}
			r.wg.Add(1)
			go r.resolveAsync(d)
		}
	}
}

// Interfaces lists the up, non-loopback interfaces of the resolver's
// namespace but those hidden (Hide): the interfaces uvsd serves by
// default.
func (r *Resolver) Interfaces() ([]Interface, error) {
	links, err := r.nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("neigh: interfaces: %w", err)
	}
	r.mu.Lock()
	hidden := maps.Clone(r.hidden)
	r.mu.Unlock()
	var out []Interface
	for _, l := range links {
		la := l.Attrs()
		if la.Flags&net.FlagUp == 0 || la.Flags&net.FlagLoopback != 0 || hidden[la.Index] > 0 {
			continue
		}
		ifc := Interface{Index: la.Index, Name: la.Name, MTU: la.MTU}
		copy(ifc.MAC[:], la.HardwareAddr)
		addrs, err := r.nl.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("neigh: addresses of %s: %w", la.Name, err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok || a.IPNet == nil {
				continue
			}
			bits, _ := a.Mask.Size()
			ifc.Addrs = append(ifc.Addrs, netip.PrefixFrom(ip.Unmap(), bits))
		}
		out = append(out, ifc)
	}
	return out, nil
}

// Hide keeps interface ifindex out of Interfaces until the returned
// function is called: a device of uvsd's own (the local-delivery device)
// is up and has no loopback flag, but is no interface to serve.
func (r *Resolver) Hide(ifindex int) (undo func()) {
	r.mu.Lock()
	r.hidden[ifindex]++
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.hidden[ifindex]--; r.hidden[ifindex] <= 0 {
				delete(r.hidden, ifindex)
			}
		})
	}
}

// inNetNS runs fn on a throw-away OS thread switched into ns (or directly
// when ns is unset). If switching back fails the thread stays locked and the
// runtime destroys it.
func inNetNS(ns netns.NsHandle, fn func() error) error {
	if ns <= 0 {
		return fn()
	}
	return netnsdo.DoHandle(ns, fn)
}
