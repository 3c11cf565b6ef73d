package bench

import (
	"fmt"
)

// flushTimeWait kills the TIME_WAIT sockets of every namespace of the
// topology (ss -K, SOCK_DESTROY; see timewait.go for why).
func (h *harness) flushTimeWait() error {
	for _, ns := range h.topo.Namespaces() {
		if out, err := nsRun(cmdTimeout, ns, -1, "ss", "-K", "-t", "state", "time-wait"); err != nil {
			return fmt.Errorf("killing TIME_WAIT sockets in %s: %w: %s", ns, err, trunc([]byte(out)))
		}
	}
	return nil
}

// pawsRejects sums TcpExtPAWSTimewait over the real servers' namespaces.
func (h *harness) pawsRejects() (uint64, error) {
	var sum uint64
	for _, be := range h.topo.Backends {
		out, err := nsRun(cmdTimeout, be.NS, -1, "cat", "/proc/net/netstat")
		if err != nil {
			return 0, err
		}
		n, err := pawsTimewait(out)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", be.NS, err)
		}
		sum += n
	}
	return sum, nil
}
