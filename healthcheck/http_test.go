package healthcheck

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/wait"
)

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func serverAddr(t testing.TB, s *httptest.Server) netip.AddrPort {
	t.Helper()
	return s.Listener.Addr().(*net.TCPAddr).AddrPort()
}

// rawServer answers every connection with resp after reading the request
// header, which it sends on reqs.
func rawServer(t testing.TB, network, addr, resp string) (netip.AddrPort, <-chan string) {
	t.Helper()
	reqs := make(chan string, 16)
	_, a := listen(t, network, addr, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		var req strings.Builder
		for {
			line, err := br.ReadString('\n')
			req.WriteString(line)
			if err != nil || line == "\r\n" {
				break
			}
		}
		reqs <- req.String()
		_, _ = io.WriteString(c, resp)
	})
	return a, reqs
}

const okResp = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello"

// The request is keepalived's template, byte for byte.
func TestHTTPRequestTemplate(t *testing.T) {
	a, reqs := rawServer(t, "tcp", "127.0.0.1:0", okResp)
	host := a.String()
	for _, tc := range []struct {
		proto      HTTPProtocol
		vhost, url string
		want       string
	}{
		{HTTP10, "", "", "GET /x HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: " + host + "\r\n\r\n"},
		{HTTP10C, "", "", "GET /x HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: " + host + "\r\n\r\n"},
		{HTTP11, "www.example.com", "", "GET /x HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.example.com\r\n\r\n"},
		{HTTP10, "www.example.com", "url.example.com", "GET /x HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: url.example.com\r\n\r\n"},
	} {
		h := &HTTPGet{Protocol: tc.proto, VirtualHost: tc.vhost, URLs: []URL{{Path: "/x", VirtualHost: tc.url}}}
		if r := h.Probe(context.Background(), Target{Addr: a, Timeout: 5 * time.Second}); !r.OK {
			t.Errorf("%+v: %+v", tc, r)
		}
		if got := <-reqs; got != tc.want {
			t.Errorf("request:\ngot  %q\nwant %q", got, tc.want)
		}
	}
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		_ = ln.Close()
		a6, reqs6 := rawServer(t, "tcp6", "[::1]:0", okResp)
		h := &HTTPGet{URLs: []URL{{Path: "/"}}}
		if r := h.Probe(context.Background(), Target{Addr: a6, Timeout: 5 * time.Second}); !r.OK {
			t.Errorf("v6: %+v", r)
		}
		if got := <-reqs6; !strings.Contains(got, "\r\nHost: [::1]:") {
			t.Errorf("v6 request %q", got)
		}
	}
}

func TestHTTPGetChecks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = io.WriteString(w, "hello world")
		case "/503":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "busy")
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	tgt := Target{Addr: serverAddr(t, srv), Timeout: 5 * time.Second}
	status503, _ := ParseStatusCodes([]string{"503"})
	redirects, _ := ParseStatusCodes([]string{"300-399", "200"})
	for _, tc := range []struct {
		name string
		url  URL
		ok   bool
		msg  string
	}{
		{"ok", URL{Path: "/ok"}, true, "success to"},
		{"digest", URL{Path: "/ok", Digest: md5hex("hello world")}, true, "success to"},
		{"digest upper case", URL{Path: "/ok", Digest: strings.ToUpper(md5hex("hello world"))}, true, "success to"},
		{"wrong digest", URL{Path: "/ok", Digest: md5hex("hello")}, false, "MD5 digest error to server"},
		{"404", URL{Path: "/missing"}, false, "HTTP status code error to server"},
		{"503 default set", URL{Path: "/503"}, false, "HTTP status code error to"},
		{"503 in set", URL{Path: "/503", Status: status503}, true, "success to"},
		{"302 not followed", URL{Path: "/redirect"}, false, "HTTP status code error"},
		{"302 in set", URL{Path: "/redirect", Status: redirects}, true, "success to"},
		{"regex", URL{Path: "/ok", Regex: regexp.MustCompile(`wor.d`)}, true, "success to"},
		{"regex fails", URL{Path: "/ok", Regex: regexp.MustCompile(`^world`)}, false, "Regex match failed"},
		{"regex_no_match", URL{Path: "/ok", Regex: regexp.MustCompile(`^world`), RegexNoMatch: true}, true, "success to"},
		{"regex_no_match fails", URL{Path: "/ok", Regex: regexp.MustCompile(`hello`), RegexNoMatch: true}, false, "Regex match failed"},
	} {
		h := &HTTPGet{URLs: []URL{tc.url}}
		r := h.Probe(context.Background(), tgt)
		if r.OK != tc.ok || !strings.Contains(r.Msg, tc.msg) {
			t.Errorf("%s: %+v, want ok=%v and %q", tc.name, r, tc.ok, tc.msg)
		}
	}
	// Probe stops at the first failing URL.
	h := &HTTPGet{URLs: []URL{{Path: "/ok"}, {Path: "/missing"}, {Path: "/ok"}}}
	if r := h.Probe(context.Background(), tgt); r.OK || !strings.HasPrefix(r.Msg, "HTTP status code error") {
		t.Errorf("several URLs: %+v", r)
	}
	if r := h.ProbeURL(context.Background(), tgt, 2); r.Msg != "HTTP status code success to "+ServiceString(tgt.Addr, "tcp")+" url(/ok)" {
		t.Errorf("success line: %q", r.Msg)
	}
	d, status, err := GenHash(context.Background(), tgt, &HTTPGet{URLs: []URL{{Path: "/ok"}}}, 0)
	if err != nil || d != md5hex("hello world") || status != 200 {
		t.Errorf("GenHash: %q %d %v", d, status, err)
	}
}

// The digest covers the body only, capped at Content-Length.
func TestHTTPDigestContentLength(t *testing.T) {
	a, _ := rawServer(t, "tcp", "127.0.0.1:0", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA")
	h := &HTTPGet{URLs: []URL{{Path: "/", Digest: md5hex("hello")}}}
	if r := h.Probe(context.Background(), Target{Addr: a, Timeout: 5 * time.Second}); !r.OK {
		t.Errorf("capped digest: %+v", r)
	}
}

// Failures of the connection: refused, closed without data, no answer.
func TestHTTPGetFailures(t *testing.T) {
	h := &HTTPGet{URLs: []URL{{Path: "/"}}}
	r0 := closedPort(t)
	r := h.Probe(context.Background(), Target{Addr: r0, Timeout: 5 * time.Second})
	if r.OK || r.Msg != "Error connecting server "+ServiceString(r0, "tcp")+"." {
		t.Errorf("refused: %+v", r)
	}
	_, empty := listen(t, "tcp", "127.0.0.1:0", nil)
	r = h.Probe(context.Background(), Target{Addr: empty, Timeout: 5 * time.Second})
	if r.OK || r.Msg != "Read, no data received from  server "+ServiceString(empty, "tcp")+"." {
		t.Errorf("closed at once: %+v", r)
	}
	release := make(chan struct{})
	_, silent := listen(t, "tcp", "127.0.0.1:0", func(net.Conn) { <-release })
	t.Cleanup(func() { close(release) }) // runs before the listener's cleanup
	r = h.Probe(context.Background(), Target{Addr: silent, Timeout: 100 * time.Millisecond})
	if r.OK || r.Msg != "Timeout HTTP read server "+ServiceString(silent, "tcp")+"." {
		t.Errorf("never answers: %+v", r)
	}
	// The context's deadline bounds the probe too.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if r = h.Probe(ctx, Target{Addr: silent, Timeout: time.Hour}); r.OK {
		t.Errorf("never answers, context deadline: %+v", r)
	}
}

// SSL_GET: TLS without verification by default, SNI on request.
func TestSSLGet(t *testing.T) {
	var mu sync.Mutex
	var sni []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "secure")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failing probes below are expected
	srv.TLS = &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		mu.Lock()
		sni = append(sni, hello.ServerName)
		mu.Unlock()
		return nil, nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tgt := Target{Addr: serverAddr(t, srv), Timeout: 5 * time.Second}
	h := &HTTPGet{TLS: true, URLs: []URL{{Path: "/", Digest: md5hex("secure")}}}
	if r := h.Probe(context.Background(), tgt); !r.OK {
		t.Errorf("SSL_GET: %+v", r)
	}
	h.EnableSNI, h.VirtualHost = true, "www.example.com"
	if r := h.Probe(context.Background(), tgt); !r.OK {
		t.Errorf("SSL_GET with SNI: %+v", r)
	}
	h.SNIName = "sni.example.com"
	if r := h.Probe(context.Background(), tgt); !r.OK {
		t.Errorf("SSL_GET with sni_name: %+v", r)
	}
	mu.Lock()
	if want := []string{"", "www.example.com", "sni.example.com"}; strings.Join(sni, ",") != strings.Join(want, ",") {
		t.Errorf("server names %q, want %q", sni, want)
	}
	mu.Unlock()
	// Plain HTTP to a TLS server fails; verification on request fails on
	// the test certificate.
	if r := (&HTTPGet{URLs: h.URLs}).Probe(context.Background(), tgt); r.OK {
		t.Errorf("HTTP_GET to a TLS server: %+v", r)
	}
	v := &HTTPGet{TLS: true, URLs: h.URLs, TLSConfig: &tls.Config{ServerName: "example.com"}}
	if r := v.Probe(context.Background(), tgt); r.OK {
		t.Errorf("verified SSL_GET against a test certificate: %+v", r)
	}
}

// A Checker with HTTP_GET on the real clock: probes run, and nothing is
// left running after Stop and the servers' close.
func TestHTTPCheckerNoLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok")
		}))
		defer srv.Close()
		cfg := Defaults(KindHTTP)
		cfg.Target = Target{Addr: serverAddr(t, srv), Timeout: 5 * time.Second}
		cfg.DelayLoop, cfg.Warmup, cfg.FastRecovery, cfg.Alpha = 10*time.Millisecond, 0, true, true
		rs := NewRealServer("rs", nil)
		rs.AddChecker(cfg, &HTTPGet{URLs: []URL{{Path: "/a"}, {Path: "/b"}}}, Options{})
		rs.Start()
		defer rs.Stop()
		wait.For(t, 10*time.Second, rs.Alive, "the alpha real server up")
	}()
	wait.For(t, 10*time.Second, func() bool { return runtime.NumGoroutine() <= base },
		"goroutines back to %d, have %v", base, wait.Lazy(func() any { return runtime.NumGoroutine() }))
}
