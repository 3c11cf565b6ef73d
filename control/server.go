package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/uvs-lb/uvs/control/wire"
	"github.com/uvs-lb/uvs/ipvsadm"
)

// Server serves the control socket: each connection carries one Request,
// which is executed with Run against the State and answered with its
// output and exit status.
//
// Only peers with uid 0 (SO_PEERCRED) may change the configuration;
// others may list. Requests are served concurrently (the State serialises
// changes), each bounded by Timeout.
type Server struct {
	st  *State
	env Env

	// Timeout bounds one request (wire.DefaultRequestTimeout if zero).
	Timeout time.Duration
	// MaxConns bounds the connections served at once (32 if zero); more
	// wait in the listen backlog.
	MaxConns int

	// peer reports whether the connected peer may change the State; tests
	// replace it. Default: peerIsRoot (SO_PEERCRED uid 0).
	peer func(*net.UnixConn) (bool, error)
}

// NewServer returns a server for st. env supplies the connection lister,
// the estimator, the conn-table size and the sync daemons (env.Daemons,
// called concurrently by the requests); its Prog and Privileged fields
// are set per request, so --start-daemon and --stop-daemon, like every
// change, are refused to a peer that is not root.
func NewServer(st *State, env Env) *Server {
	return &Server{st: st, env: env, peer: peerIsRoot}
}

// Listen binds the control socket. It fails with EADDRINUSE when another
// director already serves this network namespace.
func Listen(name string) (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", name, err)
	}
	return ln, nil
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
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = 32
	}
	sem := make(chan struct{}, maxConns)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		c, err := ln.AcceptUnix()
		if err != nil {
			<-sem
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.handle(c)
		}()
	}
}

// handle serves one connection.
func (s *Server) handle(c *net.UnixConn) {
	defer c.Close()
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = wire.DefaultRequestTimeout
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	typ, p, err := wire.ReadFrame(c, wire.MaxRequest)
	if err != nil {
		return
	}
	out := &wire.FrameWriter{W: c, Type: wire.FrameStdout}
	errw := &wire.FrameWriter{W: c, Type: wire.FrameStderr}
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
		env := s.env
		env.Prog = req.Prog
		env.Privileged = false
		if s.peer != nil {
			priv, err := s.peer(c)
			env.Privileged = err == nil && priv
		}
		code = Run(s.st, env, req.Args, bytes.NewReader(req.Stdin), out, errw)
	}
	_ = wire.WriteFrame(c, wire.FrameExit, wire.ExitPayload(code))
}
