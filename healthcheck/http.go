package healthcheck

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// HTTPProtocol is http_protocol: the request's version and whether it
// asks the server to close the connection.
type HTTPProtocol uint8

// The http_protocol values; the default is 1.0.
const (
	HTTP10  HTTPProtocol = iota // "1.0": HTTP/1.0, no Connection header
	HTTP10C                     // "1.0C" ("1.0c"): HTTP/1.0 with Connection: close
	HTTP11                      // "1.1": HTTP/1.1 with Connection: close
)

// ParseHTTPProtocol parses http_protocol's argument.
func ParseHTTPProtocol(s string) (HTTPProtocol, error) {
	switch s {
	case "1.0":
		return HTTP10, nil
	case "1.0C", "1.0c":
		return HTTP10C, nil
	case "1.1":
		return HTTP11, nil
	}
	return 0, fmt.Errorf("http_protocol %q: want 1.0, 1.0C or 1.1", s)
}

// StatusRange is a range of status codes, both ends included.
type StatusRange struct{ Lo, Hi int }

// StatusSet is a url's status_code list; an empty set means 200-299.
type StatusSet []StatusRange

// Contains reports whether code is in the set (200-299 when empty).
func (s StatusSet) Contains(code int) bool {
	if len(s) == 0 {
		return code >= 200 && code <= 299
	}
	for _, r := range s {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

// ParseStatusCodes parses status_code's arguments: codes and ranges
// ("200-299", "400", "503"), each within 100..599.
func ParseStatusCodes(args []string) (StatusSet, error) {
	var s StatusSet
	for _, a := range args {
		lo, hi, isRange := strings.Cut(a, "-")
		l, err1 := strconv.Atoi(lo)
		h, err2 := l, error(nil)
		if isRange {
			h, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || l < 100 || h > 599 || l > h {
			return nil, fmt.Errorf("status_code %q: want a code or range within 100-599", a)
		}
		s = append(s, StatusRange{l, h})
	}
	return s, nil
}

// URL is one url block of HTTP_GET or SSL_GET.
type URL struct {
	Path string
	// Digest, when set, is the expected MD5 of the body (32 hex digits).
	Digest string
	// Status is status_code (empty: 200-299).
	Status StatusSet
	// VirtualHost overrides the checker's virtualhost for this URL.
	VirtualHost string
	// Regex, when set, must match the body (must not with RegexNoMatch).
	// It is Go's RE2 syntax, not keepalived's PCRE2: no backreferences or
	// lookaround, and matching is over the first MaxRegexBody bytes of
	// the body rather than over the stream with partial matches;
	// regex_options, regex_min_offset, regex_max_offset and regex_stack
	// have no equivalent here.
	Regex        *regexp.Regexp
	RegexNoMatch bool
}

// HTTPGet is the HTTP_GET and SSL_GET prober: for each URL it connects
// (with TLS for SSL_GET), sends keepalived's request, reads to EOF with
// connect_timeout per read and checks the status code, the digest and the
// regex. It is a URLProber; its Probe checks all URLs in order.
type HTTPGet struct {
	URLs     []URL
	Protocol HTTPProtocol
	// VirtualHost is the Host header when the URL has none: the checker's,
	// else the real server's, else the virtual server's virtualhost (the
	// caller resolves that precedence). Empty: the target's address.
	VirtualHost string
	// TLS makes it SSL_GET.
	TLS bool
	// EnableSNI sends SNIName (or the virtual host) as the server name.
	EnableSNI bool
	SNIName   string
	// TLSConfig replaces the default TLS configuration, which, like
	// keepalived without ca/certificate options, verifies nothing
	// (InsecureSkipVerify). ServerName is still set from SNI options
	// when empty.
	TLSConfig *tls.Config
}

// URLCount returns the number of URLs.
func (h *HTTPGet) URLCount() int { return len(h.URLs) }

// Probe checks every URL in order and stops at the first failure.
func (h *HTTPGet) Probe(ctx context.Context, t Target) Result {
	if len(h.URLs) == 0 {
		return Result{Msg: "HTTP checker without url"}
	}
	var r Result
	for i := range h.URLs {
		if r = h.ProbeURL(ctx, t, i); !r.OK {
			return r
		}
	}
	return r
}

// Request returns the request keepalived sends for URL i (request_template
// in check_http.c).
func (h *HTTPGet) Request(t Target, i int) string {
	u := &h.URLs[i]
	host := u.VirtualHost
	if host == "" {
		host = h.VirtualHost
	}
	if host == "" {
		host = t.Addr.String() // [v6]:port for IPv6
	}
	var b strings.Builder
	b.WriteString("GET ")
	b.WriteString(u.Path)
	if h.Protocol == HTTP11 {
		b.WriteString(" HTTP/1.1\r\n")
	} else {
		b.WriteString(" HTTP/1.0\r\n")
	}
	b.WriteString("User-Agent: KeepAliveClient\r\n")
	if h.Protocol != HTTP10 {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("Host: ")
	b.WriteString(host)
	b.WriteString("\r\n\r\n")
	return b.String()
}

// Fetch's errors besides the connection's.
var (
	errReadTimeout = errors.New("timeout HTTP read")
	errSend        = errors.New("cannot send get request")
)

// Fetch performs the request of URL i and returns what was read, keeping
// up to keep body bytes. A timeout after some data is an error, as in
// keepalived; other errors after the request end the response.
func (h *HTTPGet) Fetch(ctx context.Context, t Target, i, keep int) (Response, error) {
	conn, err := DialTarget(ctx, "tcp", t)
	if err != nil {
		return Response{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	deadline := func() time.Time {
		var d time.Time
		if t.Timeout > 0 {
			d = time.Now().Add(t.Timeout)
		}
		if cd, ok := ctx.Deadline(); ok && (d.IsZero() || cd.Before(d)) {
			d = cd
		}
		return d
	}
	if h.TLS {
		cfg := h.tlsConfig()
		tc := tls.Client(conn, cfg)
		_ = tc.SetDeadline(deadline())
		if err := tc.HandshakeContext(ctx); err != nil {
			return Response{}, fmt.Errorf("tls handshake: %w", err)
		}
		conn = tc
	}
	_ = conn.SetDeadline(deadline())
	if _, err := conn.Write([]byte(h.Request(t, i))); err != nil {
		return Response{}, fmt.Errorf("%w: %w", errSend, err)
	}
	p := newRespParser(keep)
	buf := make([]byte, 16<<10)
	for {
		_ = conn.SetReadDeadline(deadline())
		n, err := conn.Read(buf)
		_, _ = p.Write(buf[:n])
		if err != nil {
			if ctx.Err() != nil {
				return p.result(), ctx.Err()
			}
			if IsTimeout(err) {
				return p.result(), errReadTimeout
			}
			return p.result(), nil // EOF, or a reset/unclean TLS close after the request
		}
	}
}

func (h *HTTPGet) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if h.TLSConfig != nil {
		cfg = h.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // keepalived does not verify by default
	}
	if cfg.ServerName == "" && h.EnableSNI {
		cfg.ServerName = h.SNIName
		if cfg.ServerName == "" {
			cfg.ServerName = h.VirtualHost
		}
	}
	return cfg
}

// ProbeURL checks URL i once.
func (h *HTTPGet) ProbeURL(ctx context.Context, t Target, i int) Result {
	u := &h.URLs[i]
	svc := ServiceString(t.Addr, "tcp")
	keep := 0
	if u.Regex != nil {
		keep = MaxRegexBody
	}
	resp, err := h.Fetch(ctx, t, i, keep)
	// keepalived's timeout_epilog line: "<what> server <service>."
	fail := func(what string) Result { return Result{Msg: what + " server " + svc + "."} }
	switch {
	case errors.Is(err, errReadTimeout):
		if h.TLS {
			return fail("Timeout SSL read")
		}
		return fail("Timeout HTTP read")
	case errors.Is(err, errSend):
		return fail("Cannot send get request to")
	case err != nil && IsTimeout(err):
		return fail("Timeout connecting")
	case err != nil:
		return fail("Error connecting")
	case resp.Received == 0:
		return fail("Read, no data received from ")
	case !u.Status.Contains(resp.Status):
		return fail("HTTP status code error to")
	case u.Digest != "" && !strings.EqualFold(u.Digest, resp.Digest):
		return fail("MD5 digest error to")
	case u.Regex != nil && u.Regex.Match(resp.Body) == u.RegexNoMatch:
		return fail("Regex match failed")
	}
	what := "HTTP status code"
	if u.Digest != "" {
		what = "MD5 digest"
	}
	if u.Regex != nil {
		what = "Regex match"
	}
	return Result{OK: true, Msg: what + " success to " + svc + " url(" + u.Path + ")"}
}

// GenHash is keepalived's genhash: it fetches URL i of h from t and returns
// the digest its digest option must hold, with the response's status.
func GenHash(ctx context.Context, t Target, h *HTTPGet, i int) (digest string, status int, err error) {
	resp, err := h.Fetch(ctx, t, i, 0)
	if err != nil {
		return "", resp.Status, fmt.Errorf("genhash %s: %w", h.URLs[i].Path, err)
	}
	if resp.Received == 0 {
		return "", 0, fmt.Errorf("genhash %s: no data received", h.URLs[i].Path)
	}
	return resp.Digest, resp.Status, nil
}
