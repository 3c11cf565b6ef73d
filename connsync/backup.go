package connsync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/connsync/wire"
)

// Applier creates or refreshes the connection an accepted entry
// describes, by the kernel's rules (ip_vs_proc_conn). It is called from
// the backup's goroutine, one entry at a time; e is valid only during the
// call. version is the message's (0 or 1): version 0 entries have no
// timeout and no fwmark, and their flags are not masked (wire.BackupFlags).
type Applier interface {
	Apply(e *wire.Entry, version int)
}

// BackupStats are a backup's counters.
type BackupStats struct {
	Messages    uint64 // datagrams received and handled
	Applied     uint64 // entries passed to the Applier
	WrongSyncID uint64 // messages ignored for their syncid
	ReadErrors  uint64
	// Rejected counts, by reason, messages dropped whole (ReasonShort,
	// ReasonBogusSize), messages whose rest was dropped, and single
	// entries dropped.
	Rejected [wire.NumReasons]uint64
}

// RejectedTotal returns the sum of Rejected.
func (s *BackupStats) RejectedTotal() uint64 {
	var n uint64
	for _, v := range s.Rejected {
		n += v
	}
	return n
}

// datagramConn is what the backup needs of its socket.
type datagramConn interface {
	Read([]byte) (int, error)
	SetReadDeadline(time.Time) error
	Close() error
}

// Backup is the backup sync daemon: it reads messages from the group,
// ignores those of another syncid (unless its own is 0), decodes them
// with the kernel's rules and applies each accepted entry.
type Backup struct {
	cfg   Config
	apply Applier
	log   *zap.Logger
	conn  datagramConn

	buf     []byte
	dec     wire.Decoder
	version int
	fn      func(*wire.Entry)
	badLog  rateLimit

	messages, applied, wrongSyncID, readErrors atomic.Uint64
	rejected                                   [wire.NumReasons]atomic.Uint64

	running  atomic.Bool
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// NewBackup opens the backup's socket (§4.6: bound to group:port and to
// cfg.Interface, SO_REUSEADDR, joined to the group on the interface) and
// returns the daemon; Run starts it. cfg gets WithDefaults with the
// interface's MTU: its MaxLen is the read buffer, and longer datagrams
// are truncated and then fail the size check, as in the kernel (an empty
// State means "backup"). An unknown interface is an error wrapping syscall.ENODEV that names it.
func NewBackup(cfg Config, a Applier, log *zap.Logger) (*Backup, error) {
	if cfg.State == "" {
		cfg.State = "backup"
	}
	ifi, err := interfaceByName(cfg.Interface)
	if err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults(ifi.MTU)
	if err := cfg.check("backup"); err != nil {
		return nil, err
	}
	c, err := openBackup(cfg, ifi)
	if err != nil {
		return nil, err
	}
	return newBackup(cfg, a, log, c), nil
}

func newBackup(cfg Config, a Applier, log *zap.Logger, c datagramConn) *Backup {
	if log == nil {
		log = zap.NewNop()
	}
	b := &Backup{cfg: cfg, apply: a, log: log, conn: c, buf: make([]byte, cfg.MaxLen),
		stop: make(chan struct{}), done: make(chan struct{})}
	b.fn = func(e *wire.Entry) { b.apply.Apply(e, b.version) }
	return b
}

// Config returns the daemon's configuration, defaults filled in.
func (b *Backup) Config() Config { return b.cfg }

// Stats returns the counters.
func (b *Backup) Stats() BackupStats {
	s := BackupStats{
		Messages:    b.messages.Load(),
		Applied:     b.applied.Load(),
		WrongSyncID: b.wrongSyncID.Load(),
		ReadErrors:  b.readErrors.Load(),
	}
	for i := range s.Rejected {
		s.Rejected[i] = b.rejected[i].Load()
	}
	return s
}

// Run receives until ctx is done or Close is called, and returns nil
// then; it returns an error if the socket fails otherwise.
func (b *Backup) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer close(b.done)
	select {
	case <-b.stop:
		return nil
	default:
	}
	stopRead := context.AfterFunc(ctx, func() { b.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stopRead()
	b.log.Info(fmt.Sprintf("sync thread started: state = BACKUP, mcast_ifn = %s, syncid = %d, id = 0", b.cfg.Interface, b.cfg.SyncID))
	defer b.log.Info("stopping backup sync thread 0 ...")
	failures := 0
	for {
		n, err := b.conn.Read(b.buf)
		if err != nil {
			if ctx.Err() != nil || b.stopping() {
				return nil
			}
			b.readErrors.Add(1)
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("sync daemon: read on %s: %w", b.cfg.Interface, err)
			}
			// The kernel goes on after a receive error; a socket that
			// keeps failing is broken.
			if failures++; failures > 100 {
				return fmt.Errorf("sync daemon: read on %s: %w", b.cfg.Interface, err)
			}
			continue
		}
		failures = 0
		b.handle(b.buf[:n])
	}
}

func (b *Backup) stopping() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// handle processes one received datagram.
func (b *Backup) handle(msg []byte) {
	// Counted when done, so a reader seeing Messages == n sees the
	// other counters of those n messages.
	defer b.messages.Add(1)
	h, why := wire.ParseHeader(msg)
	if why != wire.ReasonNone {
		b.reject(why, len(msg))
		return
	}
	if b.cfg.SyncID != 0 && h.SyncID != b.cfg.SyncID {
		b.wrongSyncID.Add(1)
		return
	}
	b.version = h.Version
	r := b.dec.Decode(msg, b.fn)
	b.applied.Add(uint64(r.Accepted))
	for i, n := range r.Dropped {
		if n != 0 {
			b.rejected[i].Add(uint64(n))
		}
	}
	if r.Stop != wire.ReasonNone {
		b.reject(r.Stop, len(msg))
	}
}

func (b *Backup) reject(why wire.Reason, n int) {
	b.rejected[why].Add(1)
	if s, ok := b.badLog.allow(time.Now()); ok {
		b.log.Debug("BACKUP, dropping message", zap.Stringer("reason", why), zap.Int("len", n), zap.Int("suppressed", s))
	}
}

// Close stops Run (waiting for it) and closes the socket.
func (b *Backup) Close() error {
	var err error
	b.stopOnce.Do(func() {
		close(b.stop)
		err = b.conn.Close()
		if b.running.Load() {
			<-b.done
		}
	})
	return err
}
