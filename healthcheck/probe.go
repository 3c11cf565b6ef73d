// Package healthcheck is the LVS half of keepalived's checker process, run
// by uvsd: probers that test one real server once (TCP_CHECK, HTTP_GET,
// SSL_GET, MISC_CHECK, UDP_CHECK, PING_CHECK, DNS_CHECK, SMTP_CHECK,
// FILE_CHECK), the per-checker state machine that turns probe results into
// up and down as keepalived's check_*.c epilogues do, and the scheduling of
// probes. It knows nothing of packets or of the director's tables: it
// reports state changes, and the director applies them to its pool.
package healthcheck

import (
	"context"
	"net/netip"
	"time"
)

// Target is where and how one probe connects (keepalived's checker
// connection options: connect_ip, connect_port, bindto, bind_port,
// fwmark, connect_timeout).
type Target struct {
	// Addr is connect_ip:connect_port, defaulting to the real server's
	// address and port.
	Addr netip.AddrPort
	// BindTo and BindPort are the local address and port (zero: any).
	BindTo   netip.Addr
	BindPort uint16
	// FWMark is set on the probe's socket (SO_MARK) when non-zero.
	FWMark uint32
	// Timeout is connect_timeout: how long one probe may take (a prober
	// with several steps applies it per step, as keepalived does).
	Timeout time.Duration
}

// Result is the outcome of one probe.
type Result struct {
	// OK reports that the checked service answered as configured.
	OK bool
	// Weight, when HasWeight, is a weight the probe asks for (MISC_CHECK
	// with misc_dynamic: exit status − 2; FILE_CHECK: the file's value
	// times its weight). Otherwise the configured weight stands.
	Weight    int
	HasWeight bool
	// Msg says what happened, in keepalived's words where it has them
	// ("TCP connection to [10.0.0.7]:tcp:80 timeout.", "HTTP status code
	// error to ..."), for the log.
	Msg string
}

// Prober performs one probe of one real server. Probe must return by the
// context's deadline or t.Timeout, whichever comes first, and must not
// leave goroutines or processes behind.
type Prober interface {
	Probe(ctx context.Context, t Target) Result
}

// ProberFunc adapts a function to Prober.
type ProberFunc func(ctx context.Context, t Target) Result

// Probe calls f.
func (f ProberFunc) Probe(ctx context.Context, t Target) Result { return f(ctx, t) }
