package healthcheck

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
)

// DialTarget connects to t.Addr over network ("tcp", "udp"), from
// t.BindTo:t.BindPort when set, with SO_MARK t.FWMark when non-zero (Linux;
// elsewhere a mark is an error), within t.Timeout (when non-zero) and ctx.
// It is the connection part of keepalived's checkers (tcp_connect in
// layer4.c). Errors are *net.OpError values.
func DialTarget(ctx context.Context, network string, t Target) (net.Conn, error) {
	udp := strings.HasPrefix(network, "udp")
	d := probeDialer(t, udp)
	d.Timeout = t.Timeout
	return d.DialContext(ctx, network, t.Addr.String())
}

// IsTimeout reports whether err is a timeout (a deadline, connect_timeout,
// or the context's deadline).
func IsTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TCPCheck is keepalived's TCP_CHECK prober: success when a TCP connection
// to the target completes within connect_timeout; the connection is then
// closed without sending anything.
type TCPCheck struct{}

// Probe connects once.
func (TCPCheck) Probe(ctx context.Context, t Target) Result {
	svc := ServiceString(t.Addr, "tcp")
	c, err := DialTarget(ctx, "tcp", t)
	if err != nil {
		if IsTimeout(err) {
			return Result{Msg: "TCP connection to " + svc + " timeout."}
		}
		return Result{Msg: "TCP connection to " + svc + " failed."}
	}
	_ = c.Close()
	return Result{OK: true, Msg: "TCP connection to " + svc + " success."}
}
