package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uvs-lb/uvs/control/wire"
	"github.com/uvs-lb/uvs/ipvsadm"
)

// Server serves the control socket: each connection carries one Request,
// which is executed with Run against the State and answered with its
// output and exit status.
//
// The peer's credentials (SO_PEERCRED) are read when a connection is
// accepted, before any byte of it: only uid 0 may change the
// configuration or list connections (the kernel reserves both to
// CAP_NET_ADMIN); others may list services. What is read is bounded by
// them: the 5-byte frame header first, then a payload of at most
// wire.MaxUnprivRequest bytes from a non-root peer and wire.MaxRequest
// from root, the whole request within ReadTimeout. A header announcing
// more is answered with an error and the connection closed, its payload
// unread. Root's and others' connections have separate slots, so peers
// that are not root can neither starve root nor hold more than
// MaxUnprivConns connections: one more is refused at once.
//
// Requests are served concurrently (the State serialises changes), each
// bounded by Timeout.
type Server struct {
	st  *State
	env Env

	// Timeout bounds one request (wire.DefaultRequestTimeout if zero).
	Timeout time.Duration
	// ReadTimeout bounds the reading of a request from accept to its last
	// byte (wire.DefaultReadTimeout if zero): a peer that sends nothing is
	// dropped after it.
	ReadTimeout time.Duration
	// MaxConns bounds root's connections served at once (32 if zero);
	// more wait for a slot within their Timeout.
	MaxConns int
	// MaxUnprivConns bounds the connections of peers that are not root
	// (8 if zero); more are refused.
	MaxUnprivConns int

	// Audit, when set, is told of every request that may change the
	// configuration (Changes: not the listings, -h or -v), after it ran,
	// with the peer's credentials and the exit status, so that the daemon
	// logs who changed what, and whether it took. It is called from the
	// request's goroutine.
	Audit func(cred wire.Cred, prog string, args []string, code int)

	// peer returns the connected peer's credentials; tests replace it.
	// Default: wire.PeerCred (SO_PEERCRED).
	peer func(*net.UnixConn) (wire.Cred, error)

	stats serverStats
}

// ServerStats counts the connections a Server refused or dropped.
type ServerStats struct {
	// Oversized: requests whose header announced more than the peer may
	// send (their payload was not read).
	Oversized uint64
	// ReadTimeouts: peers that did not send a whole request within
	// ReadTimeout.
	ReadTimeouts uint64
	// Busy: connections of non-root peers refused because all
	// MaxUnprivConns slots were taken.
	Busy uint64
	// NoCred: connections dropped because the peer's credentials could
	// not be read.
	NoCred uint64
}

type serverStats struct {
	oversized, readTimeouts, busy, noCred atomic.Uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Oversized:    s.stats.oversized.Load(),
		ReadTimeouts: s.stats.readTimeouts.Load(),
		Busy:         s.stats.busy.Load(),
		NoCred:       s.stats.noCred.Load(),
	}
}

// NewServer returns a server for st. env supplies the connection lister,
// the estimator, the conn-table size and the sync daemons (env.Daemons,
// called concurrently by the requests); its Prog and Privileged fields
// are set per request, so --start-daemon and --stop-daemon, like every
// change, are refused to a peer that is not root.
func NewServer(st *State, env Env) *Server {
	return &Server{st: st, env: env, peer: func(c *net.UnixConn) (wire.Cred, error) { return wire.PeerCred(c) }}
}

// Listen binds the control socket. When the name is taken it fails with
// an error naming the process that holds it: another director (root), or
// a process that is not root and has no business there, which uvsd must
// not serve beside (uvsadm would refuse to talk to it).
//
// A filesystem path is made connectable by every user (mode 0666): who
// may do what is decided per request from the peer's credentials, and
// who may create the path by its directory.
func Listen(name string) (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			if why := holder(name); why != "" {
				return nil, fmt.Errorf("control socket %s: %s", name, why)
			}
		}
		return nil, fmt.Errorf("control socket %s: %w", name, err)
	}
	if name != "" && name[0] != '@' {
		if err := os.Chmod(name, 0o666); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control socket %s: %w", name, err)
		}
	}
	return ln, nil
}

// holder describes the process listening on name, or returns "" when
// none answers.
func holder(name string) string {
	c, err := net.DialTimeout("unix", name, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	cred, err := wire.PeerCred(c)
	if err != nil {
		return ""
	}
	if cred.UID != 0 {
		return fmt.Sprintf("held by pid %d running as uid %d, not root: refusing to serve beside it (stop that process, then start uvsd)", cred.PID, cred.UID)
	}
	return fmt.Sprintf("already served by pid %d (another uvsd in this network namespace?)", cred.PID)
}

// Serve binds the socket name (see wire.DefaultSocketName) and serves it until
// ctx is done; it then stops accepting, waits for the requests in flight
// and returns nil. Binding errors are returned at once.
func (s *Server) Serve(ctx context.Context, name string) error {
	ln, err := Listen(name)
	if err != nil {
		return err
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener is Serve on an already bound listener, which it closes.
func (s *Server) ServeListener(ctx context.Context, ln *net.UnixListener) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	rootSlots := make(chan struct{}, orDefault(s.MaxConns, 32))
	unprivSlots := make(chan struct{}, orDefault(s.MaxUnprivConns, 8))
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			_ = ln.Close()
			return fmt.Errorf("control socket accept: %w", err)
		}
		cred, err := s.peer(c)
		if err != nil {
			s.stats.noCred.Add(1)
			_ = c.Close()
			continue
		}
		slots := rootSlots
		if cred.UID != 0 {
			slots = unprivSlots
			select {
			case slots <- struct{}{}:
			default:
				s.stats.busy.Add(1)
				refuse(c, "uvsd: too many control connections from users that are not root; try again\n")
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cred.UID == 0 {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					_ = c.Close()
					return
				}
			}
			defer func() { <-slots }()
			s.handle(c, cred)
		}()
	}
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// refuse answers a connection that will not be served with msg and exit
// status 255, without reading it or waiting for the peer.
func refuse(c *net.UnixConn, msg string) {
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_ = wire.WriteFrame(c, wire.FrameStderr, []byte(msg))
	_ = wire.WriteFrame(c, wire.FrameExit, wire.ExitPayload(ipvsadm.ExitKernel))
	_ = c.Close()
}

// handle serves one connection from a peer with credentials cred.
func (s *Server) handle(c *net.UnixConn, cred wire.Cred) {
	defer c.Close()
	timeout := cmpDur(s.Timeout, wire.DefaultRequestTimeout)
	start := time.Now()
	_ = c.SetDeadline(start.Add(timeout))
	_ = c.SetReadDeadline(start.Add(min(timeout, cmpDur(s.ReadTimeout, wire.DefaultReadTimeout))))
	privileged := cred.UID == 0
	limit := wire.MaxUnprivRequest
	if privileged {
		limit = wire.MaxRequest
	}
	typ, n, err := wire.ReadHeader(c, limit)
	var p []byte
	if err == nil {
		p, err = wire.ReadPayload(c, n)
	}
	out := &wire.FrameWriter{W: c, Type: wire.FrameStdout}
	errw := &wire.FrameWriter{W: c, Type: wire.FrameStderr}
	var tooLarge *wire.TooLargeError
	var ne net.Error
	switch {
	case errors.As(err, &tooLarge):
		s.stats.oversized.Add(1)
		who := "root"
		if !privileged {
			who = "a user that is not root"
		}
		_, _ = fmt.Fprintf(errw, "uvsd: request of %d bytes exceeds the limit of %d for %s\n", tooLarge.Size, tooLarge.Limit, who)
		_ = wire.WriteFrame(c, wire.FrameExit, wire.ExitPayload(ipvsadm.ExitKernel))
		// Close without reading the payload: the peer's further writes fail.
		return
	case errors.As(err, &ne) && ne.Timeout():
		s.stats.readTimeouts.Add(1)
		return
	case err != nil:
		return
	}
	var req wire.Request
	code := 0
	switch {
	case typ != wire.FrameRequest:
		_, _ = fmt.Fprintf(errw, "uvsd: unexpected frame type %q\n", typ)
		code = ipvsadm.ExitKernel
	case json.Unmarshal(p, &req) != nil:
		_, _ = io.WriteString(errw, "uvsd: malformed request\n")
		code = ipvsadm.ExitKernel
	case req.Version != wire.Version:
		_, _ = fmt.Fprintf(errw, "uvsd: uvsadm speaks control protocol %d, this director %d\n", req.Version, wire.Version)
		code = ipvsadm.ExitKernel
	default:
		p = nil // the request is decoded: let a big -R's frame go
		env := s.env
		env.Prog = req.Prog
		env.Privileged = privileged
		code = Run(s.st, env, req.Args, bytes.NewReader(req.Stdin), out, errw)
		if s.Audit != nil && Changes(req.Prog, req.Args) {
			s.Audit(cred, req.Prog, req.Args, code)
		}
	}
	_ = wire.WriteFrame(c, wire.FrameExit, wire.ExitPayload(code))
}

func cmpDur(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}
