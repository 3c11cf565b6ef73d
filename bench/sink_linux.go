package bench

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
)

// sinkCount returns the packets counted by the named counters of table
// netdev tableName in namespace ns.
func sinkCount(ns, tableName string, counters ...string) (uint64, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return 0, fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		return 0, fmt.Errorf("nftables in %s: %w", ns, err)
	}
	defer func() { _ = c.CloseLasting() }()
	objs, err := c.GetObjects(&nftables.Table{Name: tableName, Family: nftables.TableFamilyNetdev})
	if err != nil {
		return 0, fmt.Errorf("counters of %s in %s: %w", tableName, ns, err)
	}
	want := map[string]bool{}
	for _, n := range counters {
		want[n] = true
	}
	var sum uint64
	found := 0
	for _, o := range objs {
		if co, ok := o.(*nftables.CounterObj); ok && want[co.Name] {
			sum += co.Packets
			found++
		}
	}
	if found != len(want) {
		return 0, fmt.Errorf("counters %v of table %s in %s: found %d", counters, tableName, ns, found)
	}
	return sum, nil
}

// Delivered sums the real servers' sink counters.
func (t *Topo) Delivered() (uint64, error) {
	var sum uint64
	for _, b := range t.Backends {
		n, err := sinkCount(b.NS, "bench", "sinkudp", "sinkipip")
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}
