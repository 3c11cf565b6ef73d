package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Result is one request and what happened to it.
type Result struct {
	N      int            // 1-based position in the run
	Phase  string         // scenario phase (persistence), or ""
	Client netip.AddrPort // the client's address and source port
	URL    string
	Answer string // the real server's name, from the body
	Err    error
	At     time.Time // when it was sent (set by scenarios that time it)

	// From the director's trace: its decision for this connection.
	Decided bool
	Real    netip.AddrPort // real server chosen (invalid: none available)
	Why     string
}

// OK reports whether the request got an answer.
func (r *Result) OK() bool { return r.Err == nil && r.Answer != "" }

// First source port the lab's client uses in a fresh instance: below the
// kernel's ephemeral range, so no other socket holds it, and a new port per
// request, so every request is a new connection the director schedules.
const firstClientPort = 20000

// client sends HTTP requests with Go's net/http from inside a namespace,
// from chosen source addresses and ports.
type client struct {
	ns      string
	roots   *x509.CertPool
	timeout time.Duration
	mu      sync.Mutex
	next    uint16
}

func newClient(ns string, next uint16, caFile string, timeout time.Duration) (*client, error) {
	c := &client{ns: ns, timeout: timeout, next: next}
	if c.next < firstClientPort || c.next > 32000 {
		c.next = firstClientPort
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		c.roots = x509.NewCertPool()
		if !c.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", caFile)
		}
	}
	return c, nil
}

func (c *client) port() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.next
	c.next++
	if c.next > 32000 {
		c.next = firstClientPort
	}
	return p
}

// nextPort is the port the next request will use (saved in the state).
func (c *client) nextPort() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

// usedAddr is the source address a request's connection uses, written by
// the transport's dial goroutine, which may outlive the request.
type usedAddr struct {
	mu sync.Mutex
	ap netip.AddrPort
}

func (u *usedAddr) set(ap netip.AddrPort) {
	u.mu.Lock()
	u.ap = ap
	u.mu.Unlock()
}

func (u *usedAddr) get() netip.AddrPort {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ap
}

// dial connects from src (a fresh source port) inside the namespace.
func (c *client) dial(ctx context.Context, src netip.Addr, addr string, used *usedAddr) (net.Conn, error) {
	var lastErr error
	for try := 0; try < 20; try++ {
		port := c.port()
		used.set(netip.AddrPortFrom(src, port))
		var conn net.Conn
		err := inNetNS(c.ns, func() error {
			d := net.Dialer{Timeout: c.timeout, LocalAddr: &net.TCPAddr{IP: src.AsSlice(), Port: int(port)}}
			var err error
			conn, err = d.DialContext(ctx, "tcp", addr)
			return err
		})
		if errors.Is(err, syscall.EADDRINUSE) {
			lastErr = err
			continue
		}
		return conn, err
	}
	return nil, lastErr
}

// do sends one GET and reads the answer.
func (c *client) do(ctx context.Context, req Request) Result {
	r := Result{URL: req.URL}
	var used usedAddr
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.dial(ctx, req.Src, addr, &used)
		},
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: c.roots},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: c.timeout}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, req.URL, nil)
	if err != nil {
		r.Err = err
		return r
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		r.Err = shortErr(err)
		r.Client = used.get()
		return r
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	r.Client = used.get()
	if err != nil {
		r.Err = shortErr(err)
		return r
	}
	if resp.StatusCode != http.StatusOK {
		r.Err = fmt.Errorf("HTTP %s", resp.Status)
		return r
	}
	r.Answer = strings.TrimSpace(string(b))
	return r
}

// shortErr keeps the part of a client error a student needs: timeout,
// reset, refused, unreachable.
func shortErr(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errors.New("timeout (no answer)")
	case errors.Is(err, syscall.ECONNRESET):
		return errors.New("connection reset")
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.Is(err, syscall.EHOSTUNREACH):
		return errors.New("no route to host")
	case errors.Is(err, syscall.ENETUNREACH):
		return errors.New("network unreachable")
	}
	return err
}
