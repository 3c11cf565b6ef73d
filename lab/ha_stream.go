package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// streamPath is the lab web server's long transfer: GET
// /stream?chunk=BYTES&every=DURATION&for=DURATION sends a chunk every
// interval until for has passed or the client goes away. Each chunk is
// the server's name, a sequence number and padding, one line.
const streamPath = "/stream"

// Bounds of /stream's parameters.
const (
	streamMaxChunk = 64 << 10
	streamMinEvery = time.Millisecond
	streamMaxFor   = 10 * time.Minute
)

func serveStream(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	chunk, every, dur := 4096, 20*time.Millisecond, 30*time.Second
	if v := q.Get("chunk"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 64 || n > streamMaxChunk {
			http.Error(w, fmt.Sprintf("chunk %q: want 64..%d bytes", v, streamMaxChunk), http.StatusBadRequest)
			return
		}
		chunk = n
	}
	for _, p := range []struct {
		key string
		d   *time.Duration
	}{{"every", &every}, {"for", &dur}} {
		if v := q.Get(p.key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < streamMinEvery || d > streamMaxFor {
				http.Error(w, fmt.Sprintf("%s %q: want a duration from %v to %v", p.key, v, streamMinEvery, streamMaxFor), http.StatusBadRequest)
				return
			}
			*p.d = d
		}
	}
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/plain")
	line := make([]byte, chunk)
	end := time.Now().Add(dur)
	t := time.NewTicker(every)
	defer t.Stop()
	for seq := 0; time.Now().Before(end); seq++ {
		head := fmt.Sprintf("%s %d ", name, seq)
		n := copy(line, head)
		for i := n; i < len(line)-1; i++ {
			line[i] = '.'
		}
		line[len(line)-1] = '\n'
		if _, err := w.Write(line); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

// transferStall is how long a transfer may go without data before the
// lab calls it dead.
const transferStall = 20 * time.Second

// transfer is a client reading a long /stream download.
type transfer struct {
	Src      netip.AddrPort // the client's end
	Server   string         // the real server's name, from the first line
	mu       sync.Mutex
	bytes    int64
	last     time.Time // the last read
	reads    []time.Time
	counts   []int64 // bytes received by reads[i]
	err      error
	errAt    time.Time
	mismatch string
	done     chan struct{}
	conn     net.Conn
	started  time.Time
}

// startTransfer connects from src (port 0: any) in namespace ns to
// vip:port and starts reading /stream.
func startTransfer(ns string, src netip.Addr, vip netip.AddrPort, dur time.Duration) (*transfer, error) {
	conn, err := dialFrom(ns, src, vip, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("transfer: connect to %s: %w", vip, err)
	}
	tr := &transfer{done: make(chan struct{}), conn: conn, started: time.Now()}
	if ap, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil {
		tr.Src = ap
	}
	req := fmt.Sprintf("GET %s?chunk=4096&every=20ms&for=%s HTTP/1.1\r\nHost: %s\r\n\r\n", streamPath, dur, vip.Addr())
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, fmt.Errorf("transfer: request: %w", err)
	}
	go tr.read()
	return tr, nil
}

func (tr *transfer) read() {
	defer close(tr.done)
	br := bufio.NewReaderSize(tr.conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tr.fail(err)
		return
	}
	defer resp.Body.Close()
	lr := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		_ = tr.conn.SetReadDeadline(time.Now().Add(transferStall))
		line, err := lr.ReadString('\n')
		if len(line) > 0 {
			name, _, _ := strings.Cut(line, " ")
			tr.mu.Lock()
			if tr.Server == "" {
				tr.Server = name
			} else if name != tr.Server && tr.mismatch == "" {
				tr.mismatch = name
			}
			tr.bytes += int64(len(line))
			now := time.Now()
			tr.last = now
			tr.reads = append(tr.reads, now)
			tr.counts = append(tr.counts, tr.bytes)
			tr.mu.Unlock()
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				tr.fail(err)
			}
			return
		}
	}
}

func (tr *transfer) fail(err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.err == nil {
		tr.err, tr.errAt = err, time.Now()
	}
}

// stop closes the connection (the lab ends the download) and waits for
// the reader.
func (tr *transfer) stop() {
	tr.mu.Lock()
	closedErr := tr.err
	tr.mu.Unlock()
	_ = tr.conn.Close()
	<-tr.done
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if closedErr == nil && tr.err != nil && errors.Is(tr.err, net.ErrClosed) {
		tr.err = nil // our own close
	}
}

// TransferStats is what a transfer saw around an instant t.
type TransferStats struct {
	Server        string
	Bytes         int64 // in all
	Before, After int64 // bytes received before and after t
	// Started is when the transfer began; Bytes is its total.
	Started time.Time
	// Stall is the longest time without data around t.
	Stall time.Duration
	Err   error // the connection failed (reset, timeout)
	ErrAt time.Time
	// Mismatch names another server whose data arrived on it ("" = none).
	Mismatch string
}

// Continued reports whether the transfer kept delivering after t without
// an error.
func (st TransferStats) Continued() bool { return st.Err == nil && st.After > 0 && st.Mismatch == "" }

func (tr *transfer) stats(t time.Time) TransferStats {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	st := TransferStats{Server: tr.Server, Bytes: tr.bytes, Err: tr.err, ErrAt: tr.errAt, Mismatch: tr.mismatch, Started: tr.started}
	prev := time.Time{}
	for i, at := range tr.reads {
		if at.Before(t) {
			st.Before = tr.counts[i]
		}
		if !prev.IsZero() && at.Sub(prev) > st.Stall {
			st.Stall = at.Sub(prev)
		}
		prev = at
	}
	st.After = tr.bytes - st.Before
	return st
}

// since reports whether data arrived after t.
func (tr *transfer) since(t time.Time) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.last.After(t)
}

func (tr *transfer) failed() bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.err != nil
}

// dialFrom connects to dst from src (any port) inside namespace ns.
func dialFrom(ns string, src netip.Addr, dst netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var conn net.Conn
	err := inNetNS(ns, func() error {
		d := net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		var err error
		conn, err = d.Dial("tcp", dst.String())
		return err
	})
	return conn, err
}

// flow is one long-lived connection that sends a request every interval
// over HTTP keep-alive: the same TCP connection throughout.
type flow struct {
	Src     netip.AddrPort
	conn    net.Conn
	br      *bufio.Reader
	host    string
	mu      sync.Mutex
	server  string    // who answered first
	reqs    int       // answered requests
	lastOK  time.Time // when the latest answer arrived
	lastReq time.Time // when the latest answered request was sent
	maxWait time.Duration
	err     error
	errAt   time.Time
	other   string // another server answered on the same connection
}

// flowTimeout bounds one request on a flow: TCP's retransmissions carry it
// over a failover (RTO 0.2, 0.4, 0.8, 1.6, 3.2 s... the sum passes VRRP's
// master-down interval by the fifth).
const flowTimeout = 20 * time.Second

// openFlows opens n connections from the sources (round robin) in
// namespace ns to dst and makes the first request on each.
func openFlows(ctx context.Context, ns string, srcs []netip.Addr, dst netip.AddrPort, n int) ([]*flow, error) {
	var flows []*flow
	err := inNetNS(ns, func() error {
		for i := range n {
			d := net.Dialer{Timeout: 5 * time.Second}
			if len(srcs) > 0 {
				d.LocalAddr = &net.TCPAddr{IP: srcs[i%len(srcs)].AsSlice()}
			}
			c, err := d.DialContext(ctx, "tcp", dst.String())
			if err != nil {
				for _, f := range flows {
					f.conn.Close()
				}
				return fmt.Errorf("flow %d of %d: connect to %s: %w", i+1, n, dst, err)
			}
			f := &flow{conn: c, br: bufio.NewReader(c), host: dst.Addr().String()}
			f.Src, _ = netip.ParseAddrPort(c.LocalAddr().String())
			flows = append(flows, f)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for _, f := range flows {
		wg.Add(1)
		go func() { defer wg.Done(); f.request() }()
	}
	wg.Wait()
	for i, f := range flows {
		if f.err != nil {
			closeFlows(flows)
			return nil, fmt.Errorf("flow %d (%s): first request: %w", i+1, f.Src, f.err)
		}
	}
	return flows, nil
}

// request sends one GET on the flow's connection and reads the answer.
func (f *flow) request() {
	start := time.Now()
	_ = f.conn.SetDeadline(start.Add(flowTimeout))
	_, err := fmt.Fprintf(f.conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", f.host)
	var body []byte
	if err == nil {
		var resp *http.Response
		if resp, err = http.ReadResponse(f.br, nil); err == nil {
			body, err = io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
		}
	}
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		if f.err == nil {
			f.err, f.errAt = shortErr(err), now
		}
		return
	}
	name := strings.TrimSpace(string(body))
	if f.server == "" {
		f.server = name
	} else if name != f.server && f.other == "" {
		f.other = name
	}
	f.reqs++
	f.lastOK, f.lastReq = now, start
	if w := now.Sub(start); w > f.maxWait {
		f.maxWait = w
	}
}

// run sends a request every interval until ctx is done or the flow fails.
func (f *flow) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.request()
		if f.failed() {
			return
		}
	}
}

func (f *flow) failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err != nil
}

// answeredAfter reports whether a request sent after t was answered.
func (f *flow) answeredAfter(t time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastReq.After(t)
}

// Server is the real server that answered the flow.
func (f *flow) Server() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.server
}

func closeFlows(flows []*flow) {
	for _, f := range flows {
		_ = f.conn.Close()
	}
}
