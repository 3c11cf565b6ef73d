package control

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// DefaultSocketName is the control socket's address: a unix stream socket
// in the abstract namespace (the leading "@" is Go's spelling of the NUL
// byte), which the kernel scopes to the network namespace, so each
// namespace has its own director and "ip netns exec ns1 uvsadm" reaches
// the one of ns1. A name without "@" is a filesystem path.
const DefaultSocketName = "@uvs-control"

// SocketEnv is the environment variable that overrides DefaultSocketName
// for uvsadm and for the uvsd it autostarts.
const SocketEnv = "UVS_CONTROL_SOCKET"

// DefaultRequestTimeout bounds one control request, from accept to the
// last byte of the reply.
const DefaultRequestTimeout = 60 * time.Second

// Wire protocol. Every message is a frame: one type byte, a 4-byte
// big-endian payload length, the payload. The client sends one
// frameRequest (a JSON Request); the server answers with any number of
// frameStdout/frameStderr chunks, in the order Run wrote them, and one
// frameExit whose payload is the exit status as a 4-byte big-endian int.
const (
	frameRequest = 'Q'
	frameStdout  = 'O'
	frameStderr  = 'E'
	frameExit    = 'X'

	protoVersion = 1
	maxRequest   = 64 << 20 // a -R rules file travels in the request
	maxChunk     = 64 << 10 // largest reply chunk the server writes
	maxReplyRead = 1 << 20  // largest reply chunk the client accepts
)

// Request is one uvsadm invocation sent to the director.
type Request struct {
	Version int      `json:"v"`
	Prog    string   `json:"prog"` // argv[0] (base name), selects the personality
	Args    []string `json:"args"` // argv[1:]
	Stdin   []byte   `json:"stdin,omitempty"`
}

func writeFrame(w io.Writer, typ byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if len(payload) == 0 {
		return nil
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads one frame whose payload is at most limit bytes.
func readFrame(r io.Reader, limit int) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if uint64(n) > uint64(limit) {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds the limit of %d", n, limit)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}

// frameWriter sends everything written to it as frames of one type.
type frameWriter struct {
	w   io.Writer
	typ byte
	err error
}

func (f *frameWriter) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n := 0
	for len(p) > 0 {
		c := min(len(p), maxChunk)
		if f.err = writeFrame(f.w, f.typ, p[:c]); f.err != nil {
			return n, f.err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}

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

	// Timeout bounds one request (DefaultRequestTimeout if zero).
	Timeout time.Duration
	// MaxConns bounds the connections served at once (32 if zero); more
	// wait in the listen backlog.
	MaxConns int

	// peer reports whether the connected peer may change the State; tests
	// replace it. Default: peerIsRoot (SO_PEERCRED uid 0).
	peer func(*net.UnixConn) (bool, error)
}

// NewServer returns a server for st. env supplies the connection lister,
// the estimator and the conn-table size; its Prog and Privileged fields
// are set per request.
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

// Serve binds the socket name (see DefaultSocketName) and serves it until
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
		timeout = DefaultRequestTimeout
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	typ, p, err := readFrame(c, maxRequest)
	if err != nil {
		return
	}
	out := &frameWriter{w: c, typ: frameStdout}
	errw := &frameWriter{w: c, typ: frameStderr}
	var req Request
	code := 0
	switch {
	case typ != frameRequest:
		_, _ = fmt.Fprintf(errw, "uvsd: unexpected frame type %q\n", typ)
		code = ExitKernel
	case json.Unmarshal(p, &req) != nil:
		_, _ = io.WriteString(errw, "uvsd: malformed request\n")
		code = ExitKernel
	case req.Version != protoVersion:
		_, _ = fmt.Fprintf(errw, "uvsd: uvsadm speaks control protocol %d, this director %d\n", req.Version, protoVersion)
		code = ExitKernel
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
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(int32(code)))
	_ = writeFrame(c, frameExit, b[:])
}
