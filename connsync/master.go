package connsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/connsync/wire"
)

// The master's timing, the kernel's (ip_vs_sync.c).
const (
	// SendDelay is how often the master drains the rings and sends the
	// full messages (IPVS_SYNC_SEND_DELAY, HZ/50).
	SendDelay = 20 * time.Millisecond
	// FlushTime is the age at which a partly filled message is sent
	// (IPVS_SYNC_FLUSH_TIME, 2 s).
	FlushTime = 2 * time.Second
)

// ErrRunning is returned by a second concurrent Run.
var ErrRunning = errors.New("sync daemon: already running")

// MasterStats are a master's counters.
type MasterStats struct {
	Messages   uint64 // messages sent
	Entries    uint64 // entries in the messages sent
	Bytes      uint64 // bytes of the messages sent (UDP payload)
	SendErrors uint64 // messages dropped because the send failed
	Skipped    uint64 // entries version 0 cannot carry (IPv6, FULLNAT)
	Discarded  uint64 // entries thrown away when the daemon stopped
	RingDrops  uint64 // entries the workers could not queue (rings full)
}

// Master is the master sync daemon: it drains the tap's rings every
// SendDelay into messages of at most MaxLen bytes, sends each full
// message at once and a partly filled one when it is FlushTime old, as
// the kernel's master thread does, with the version of the tap's policy.
type Master struct {
	cfg  Config
	tap  *Tap
	log  *zap.Logger
	conn io.WriteCloser

	builders [2]*wire.Builder // by version
	cur      *wire.Builder
	first    time.Time // when cur got its first entry
	now      time.Time // the current tick, for add
	add      func(*wire.Entry)
	errLog   rateLimit

	messages, entries, bytes, sendErrors, skipped, discarded atomic.Uint64

	running  atomic.Bool
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// NewMaster opens the master's socket on cfg.Interface (§4.5: multicast
// out of that interface, no loopback, TTL, bound to its primary IPv4
// address, connected to group:port) and returns the daemon; Run starts
// it. cfg gets WithDefaults with the interface's MTU (an empty State
// means "master"). An unknown interface is an error wrapping
// syscall.ENODEV that names it.
func NewMaster(cfg Config, tap *Tap, log *zap.Logger) (*Master, error) {
	if cfg.State == "" {
		cfg.State = "master"
	}
	ifi, err := interfaceByName(cfg.Interface)
	if err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults(ifi.MTU)
	if err := cfg.check("master"); err != nil {
		return nil, err
	}
	c, err := openMaster(cfg, ifi)
	if err != nil {
		return nil, err
	}
	return newMaster(cfg, tap, log, c), nil
}

// newMaster returns a master sending on c (tests give a fake).
func newMaster(cfg Config, tap *Tap, log *zap.Logger, c io.WriteCloser) *Master {
	if log == nil {
		log = zap.NewNop()
	}
	m := &Master{cfg: cfg, tap: tap, log: log, conn: c, stop: make(chan struct{}), done: make(chan struct{})}
	for v := range m.builders {
		m.builders[v] = wire.NewBuilder(v, int(cfg.MaxLen))
		m.builders[v].Reset(cfg.SyncID)
	}
	m.cur = m.builders[policyVersion(tap.Policy())]
	m.add = m.addEntry
	return m
}

func policyVersion(p *Policy) int {
	if p.Version == 0 {
		return 0
	}
	return 1
}

// Config returns the daemon's configuration, defaults filled in.
func (m *Master) Config() Config { return m.cfg }

// Stats returns the counters.
func (m *Master) Stats() MasterStats {
	return MasterStats{
		Messages:   m.messages.Load(),
		Entries:    m.entries.Load(),
		Bytes:      m.bytes.Load(),
		SendErrors: m.sendErrors.Load(),
		Skipped:    m.skipped.Load(),
		Discarded:  m.discarded.Load(),
		RingDrops:  m.tap.Dropped(),
	}
}

// Run sends until ctx is done or Close is called, and returns nil then.
// The tap reports Sending while it runs. What is still queued when it
// stops is discarded, as the kernel does.
func (m *Master) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer close(m.done)
	select {
	case <-m.stop:
		return nil
	default:
	}
	m.log.Info(fmt.Sprintf("sync thread started: state = MASTER, mcast_ifn = %s, syncid = %d, id = 0", m.cfg.Interface, m.cfg.SyncID))
	m.tap.SetSending(true)
	t := time.NewTicker(SendDelay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.shutdown()
			return nil
		case <-m.stop:
			m.shutdown()
			return nil
		case now := <-t.C:
			m.tick(now)
		}
	}
}

func (m *Master) shutdown() {
	m.tap.SetSending(false)
	n := uint64(m.cur.Count())
	for _, r := range m.tap.Rings() {
		n += uint64(r.Drain(func(*wire.Entry) {}))
	}
	m.cur.Reset(m.cfg.SyncID)
	m.discarded.Add(n)
	m.log.Info("stopping master sync thread 0 ...")
}

// tick drains the rings, sending each message that fills up, then sends
// the partly filled message if it is FlushTime old.
func (m *Master) tick(now time.Time) {
	m.now = now
	if v := policyVersion(m.tap.Policy()); v != m.cur.Version() {
		// The kernel queues the buffer when the version changes.
		m.flush()
		m.cur = m.builders[v]
		m.cur.Reset(m.cfg.SyncID)
	}
	for _, r := range m.tap.Rings() {
		r.Drain(m.add)
	}
	if m.cur.Count() > 0 && now.Sub(m.first) >= FlushTime {
		m.flush()
	}
}

func (m *Master) addEntry(e *wire.Entry) {
	switch m.cur.Add(e) {
	case wire.Added:
	case wire.Full:
		m.flush()
		m.cur.Add(e) // an empty message takes any entry
	case wire.Skipped:
		m.skipped.Add(1)
		return
	}
	if m.cur.Count() == 1 {
		m.first = m.now
	}
}

// flush sends the current message, if it holds entries, and starts
// another.
func (m *Master) flush() {
	if m.cur.Count() == 0 {
		return
	}
	msg := m.cur.Message()
	if _, err := m.conn.Write(msg); err != nil {
		m.sendErrors.Add(1)
		if n, ok := m.errLog.allow(m.now); ok {
			m.log.Warn("ip_vs_send_async error", zap.String("mcast_ifn", m.cfg.Interface), zap.Error(err), zap.Int("suppressed", n))
		}
	} else {
		m.messages.Add(1)
		m.entries.Add(uint64(m.cur.Count()))
		m.bytes.Add(uint64(len(msg)))
	}
	m.cur.Reset(m.cfg.SyncID)
}

// Close stops Run (waiting for it) and closes the socket.
func (m *Master) Close() error {
	var err error
	m.stopOnce.Do(func() {
		close(m.stop)
		// Closing first ends a send blocked on a full socket buffer.
		err = m.conn.Close()
		if m.running.Load() {
			<-m.done
		}
	})
	return err
}

// rateLimit lets one log line through per interval and counts the rest.
type rateLimit struct {
	last       time.Time
	suppressed int
}

const logInterval = 5 * time.Second

// allow reports whether to log now, and how many lines were suppressed
// since the last one.
func (r *rateLimit) allow(now time.Time) (int, bool) {
	if !r.last.IsZero() && now.Sub(r.last) < logInterval {
		r.suppressed++
		return 0, false
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return n, true
}

// interfaceByName finds an interface, or returns an error wrapping
// ENODEV naming it (the kernel's "Unknown mcast interface").
func interfaceByName(name string) (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("sync daemon: list interfaces: %w", err)
	}
	for i := range ifs {
		if ifs[i].Name == name {
			return &ifs[i], nil
		}
	}
	return nil, fmt.Errorf("sync daemon: unknown mcast interface %q: %w", name, syscall.ENODEV)
}
