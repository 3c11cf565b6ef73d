// Package lab is uvs-lab's engine: the classic LVS labs of the seeds, each
// built in network namespaces in one command, with the director configured
// by the ipvsadm commands a student would type, real requests from a
// client, and a table of which real server answered each one and why the
// director chose it. See README.md.
package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ServeName serves HTTP on addr, answering every request with name and a
// newline, and a UDP echo on the same port prefixing replies with "name:",
// until ctx is done. It is the lab's real server.
func ServeName(ctx context.Context, addr, name string) error {
	return Serve(ctx, ServerConfig{Name: name, HTTP: []string{addr}})
}

// ServerConfig configures the lab's real server.
type ServerConfig struct {
	Name      string   // answered to every request
	HTTP      []string // plain HTTP (and UDP echo) addresses
	HTTPS     []string // HTTPS addresses (need CertFile and KeyFile)
	CertFile  string
	KeyFile   string
	ReadyFunc func() // called once every listener is open (tests)
	// Root, if set, is a directory served as files instead of Name (the
	// sync scenario's web root: "/" is its index.html).
	Root string
}

// Serve runs the real server until ctx is done: HTTP answering cfg.Name on
// every plain and TLS address, and a UDP echo ("name:payload") on the plain
// ones.
func Serve(ctx context.Context, cfg ServerConfig) error {
	if cfg.Name == "" {
		return errors.New("httpd: a name is required")
	}
	if len(cfg.HTTP)+len(cfg.HTTPS) == 0 {
		return errors.New("httpd: no address to listen on")
	}
	var tlsConf *tls.Config
	if len(cfg.HTTPS) > 0 {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return fmt.Errorf("httpd: certificate: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	files := http.FileServer(http.Dir(cfg.Root))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Real-Server", cfg.Name)
			if r.URL.Path == streamPath {
				serveStream(w, r, cfg.Name) // a long transfer (ha_stream.go)
				return
			}
			if cfg.Root != "" {
				files.ServeHTTP(w, r)
				return
			}
			fmt.Fprintln(w, cfg.Name)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	var lns []net.Listener
	for _, a := range cfg.HTTP {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			closeAll()
			return fmt.Errorf("httpd: %w", err)
		}
		closers = append(closers, func() { ln.Close() })
		lns = append(lns, ln)
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			closeAll()
			return fmt.Errorf("httpd: %w", err)
		}
		closers = append(closers, func() { pc.Close() })
		go echo(pc, cfg.Name)
	}
	for _, a := range cfg.HTTPS {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			closeAll()
			return fmt.Errorf("httpd: %w", err)
		}
		closers = append(closers, func() { ln.Close() })
		lns = append(lns, tls.NewListener(ln, tlsConf))
	}
	if cfg.ReadyFunc != nil {
		cfg.ReadyFunc()
	}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- srv.Serve(ln) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	_ = srv.Close()
	closeAll()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("httpd: %w", err)
	}
	return nil
}

func echo(pc net.PacketConn, name string) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo(append([]byte(name+":"), buf[:n]...), from)
	}
}
