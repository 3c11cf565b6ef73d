// Package client is uvsadm: the ipvsadm 1.31 command line run against the
// director of the current network namespace over its control socket
// (package wire), and the autostart of a director when none answers. It
// links no part of the data plane: commands are parsed here only to answer
// -h, -v and usage errors locally, and executed by the director.
//
// The socket's name proves nothing (see package wire): Client.Dial checks
// the credentials of the process holding it before a byte is sent.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uvs-lb/uvs/control/wire"
	"github.com/uvs-lb/uvs/ipvsadm"
)

// AutostartEnv is the environment variable that, set to "1" (or any
// non-empty value other than "0"), stops uvsadm from starting a director
// when none answers. It is an environment variable rather than an option
// so that it can never collide with an ipvsadm option or change how a
// script's command lines parse.
const AutostartEnv = "UVS_NO_AUTOSTART"

// DefaultStartTimeout bounds the wait for an autostarted director.
const DefaultStartTimeout = 5 * time.Second

// Client talks to the director of the current network namespace.
type Client struct {
	// Socket is the control socket name (wire.DefaultSocketName if empty).
	Socket string
	// Timeout bounds one request (wire.DefaultRequestTimeout if zero).
	Timeout time.Duration
}

func (c *Client) socket() string {
	if c.Socket == "" {
		return wire.DefaultSocketName
	}
	return c.Socket
}

// UntrustedError is a control socket held by a process that is not a
// director this client may trust (see wire.CheckServer): nothing was
// sent to it.
type UntrustedError struct{ Err error }

func (e *UntrustedError) Error() string { return e.Err.Error() }
func (e *UntrustedError) Unwrap() error { return e.Err }

// Dial connects to the director and checks, before anything is sent, that
// the process holding the socket runs as root (or as this client's own
// uid): otherwise it closes the connection and returns an
// *UntrustedError naming that process.
func (c *Client) Dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket())
	if err != nil {
		return nil, err
	}
	cred, err := wire.PeerCred(conn)
	if err == nil {
		err = wire.CheckServer(c.socket(), cred, uint32(os.Geteuid()))
	}
	if err != nil {
		conn.Close()
		return nil, &UntrustedError{err}
	}
	return conn, nil
}

// Do sends req on a new connection and copies the director's stdout and
// stderr output to stdout and stderr, returning its exit status. An error
// means no answer was received.
func (c *Client) Do(ctx context.Context, req wire.Request, stdout, stderr io.Writer) (int, error) {
	conn, err := c.Dial(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return c.Exchange(ctx, conn, req, stdout, stderr)
}

// Exchange sends req on conn, an already connected control socket, and
// copies the reply as Do does.
func (c *Client) Exchange(ctx context.Context, conn net.Conn, req wire.Request, stdout, stderr io.Writer) (int, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = wire.DefaultRequestTimeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	req.Version = wire.Version
	p, err := json.Marshal(&req)
	if err != nil {
		return 0, fmt.Errorf("control request: %w", err)
	}
	if len(p) > wire.MaxRequest {
		// The director refuses it unread: say so here, with the size.
		return 0, fmt.Errorf("control request: %d bytes exceeds the limit of %d", len(p), wire.MaxRequest)
	}
	if err := wire.WriteFrame(conn, wire.FrameRequest, p); err != nil {
		return 0, fmt.Errorf("control request: %w", err)
	}
	for {
		typ, p, err := wire.ReadFrame(conn, wire.MaxReplyRead)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("control reply: %w", err)
		}
		switch typ {
		case wire.FrameStdout:
			if _, err := stdout.Write(p); err != nil {
				return 0, fmt.Errorf("write output: %w", err)
			}
		case wire.FrameStderr:
			if _, err := stderr.Write(p); err != nil {
				return 0, fmt.Errorf("write output: %w", err)
			}
		case wire.FrameExit:
			return wire.ParseExit(p)
		default:
			return 0, fmt.Errorf("control reply: unknown frame type %q", typ)
		}
	}
}

// List asks the director on conn for its table (ipvsadm -Ln) and returns
// it; a director that answers with a non-zero status is an error carrying
// its message. Tools use it to tell that a director is serving.
func (c *Client) List(ctx context.Context, conn net.Conn) (string, error) {
	var out, errb strings.Builder
	code, err := c.Exchange(ctx, conn, wire.Request{Prog: "ipvsadm", Args: []string{"-Ln"}}, &out, &errb)
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", fmt.Errorf("ipvsadm -Ln: exit %d: %s", code, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Launcher starts a director for the current network namespace
// (ExecLauncher in production, a fake in tests).
type Launcher interface {
	// Lock serialises autostarts; the returned function releases the lock.
	Lock() (unlock func(), err error)
	// Launch starts a director detached from the caller. The channel
	// receives an error if the director exits while the caller waits.
	Launch() (exited <-chan error, err error)
}

// CLI is uvsadm: it runs ipvsadm command lines against the director of
// the current network namespace, starting one if none answers.
type CLI struct {
	Client Client
	// NoAutostart disables starting a director (UVS_NO_AUTOSTART).
	NoAutostart bool
	// Launcher starts a director; nil disables autostart too.
	Launcher Launcher
	// StartTimeout bounds the wait for an autostarted director to answer
	// (DefaultStartTimeout if zero).
	StartTimeout time.Duration
	// Poll is the interval between connection attempts while waiting
	// (50 ms if zero).
	Poll time.Duration
}

// Main runs one uvsadm invocation and returns its exit status. argv0's
// base name is sent as the program name (so ipvsadm, ipvsadm-save,
// ipvsadm-restore and the uvsadm-* symlinks behave as those programs).
//
// Parse errors, -h and -v are answered locally, without a director. stdin
// is read (whole) only for -R and the restore personality. When no
// director answers, one is started through the Launcher unless autostart
// is off; if none can be reached, the error is reported the way ipvsadm
// reports a missing ip_vs module ("Can't initialize ipvs: ...", exit 2),
// for listings as well as changes.
func (c *CLI) Main(ctx context.Context, argv0 string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	prog := filepath.Base(argv0)
	if argv0 == "" {
		prog = ipvsadm.DefaultProg
	}
	pers, name := ipvsadm.ProgPersonality(prog)
	needStdin := pers == ipvsadm.AsRestore
	switch {
	case pers == ipvsadm.AsAdm:
		cmd, code, done := ipvsadm.Answer(name, args, stdout, stderr)
		if done {
			return code
		}
		needStdin = cmd.Kind == ipvsadm.CmdRestore
	case pers == ipvsadm.AsSave && !ipvsadm.SaveArgsOK(args):
		_, _ = io.WriteString(stderr, ipvsadm.SaveUsage(name)+"\n")
		return ipvsadm.ExitList
	}
	req := wire.Request{Prog: prog, Args: args}
	if needStdin && stdin != nil {
		b, err := io.ReadAll(io.LimitReader(stdin, wire.MaxRequest))
		if err != nil {
			_, _ = fmt.Fprintf(stderr, "%s: read stdin: %v\n", name, err)
			return ipvsadm.ExitUsage
		}
		req.Stdin = b
	}
	conn, err := c.Client.Dial(ctx)
	var untrusted *UntrustedError
	if errors.As(err, &untrusted) {
		// Another director cannot be started while a squatter holds the
		// name: say who does.
		_, _ = fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ipvsadm.ExitUsage
	}
	if err != nil {
		conn, err = c.autostart(ctx)
		if err != nil {
			_, _ = io.WriteString(stderr, ipvsadm.Unavailable(err.Error())+"\n")
			return ipvsadm.ExitUsage
		}
	}
	defer conn.Close()
	code, err := c.Client.Exchange(ctx, conn, req, stdout, stderr)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ipvsadm.ExitKernel
	}
	return code
}

// autostart starts a director (unless disabled) and waits until it
// answers, returning a connection to it.
func (c *CLI) autostart(ctx context.Context) (net.Conn, error) {
	sock := c.Client.socket()
	if c.NoAutostart || c.Launcher == nil {
		why := "no uvs director answers on " + sock + " in this network namespace"
		if c.NoAutostart {
			why += " (start uvsd, or unset " + AutostartEnv + ")"
		} else {
			why += " (start uvsd)"
		}
		return nil, errors.New(why)
	}
	unlock, err := c.Launcher.Lock()
	if err != nil {
		return nil, fmt.Errorf("starting uvsd: %w", err)
	}
	defer unlock()
	// Another uvsadm may have started one while we waited for the lock.
	var untrusted *UntrustedError
	if conn, err := c.Client.Dial(ctx); err == nil {
		return conn, nil
	} else if errors.As(err, &untrusted) {
		return nil, err
	}
	exited, err := c.Launcher.Launch()
	if err != nil {
		return nil, fmt.Errorf("starting uvsd: %w", err)
	}
	wait := c.StartTimeout
	if wait <= 0 {
		wait = DefaultStartTimeout
	}
	poll := c.Poll
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if conn, err := c.Client.Dial(ctx); err == nil {
			return conn, nil
		} else if errors.As(err, &untrusted) {
			return nil, err
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("started uvsd, but it stopped: %w", err)
		case <-deadline.C:
			return nil, fmt.Errorf("started uvsd, but it did not answer on %s within %v", sock, wait)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}
