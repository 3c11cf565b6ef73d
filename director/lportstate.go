package director

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/director/lportfile"
)

// FULLNAT local port positions across a restart.
//
// A FULLNAT connection's reply tuple RS:rport ↔ LIP:lport outlives it on
// the real server, which usually closes first (an HTTP server answering
// Connection: close) and so holds the tuple in TIME_WAIT for 60 s
// (TCP_TIMEWAIT_LEN). A SYN reusing it is accepted only when its timestamp
// is newer (tcp_timewait_state_process); clients draw a random timestamp
// offset per connection, so about half such SYNs are dropped by PAWS
// (TcpExtPAWSTimewait) and wait a second for their retransmission. A uvsd
// restarted within those 60 s must therefore not walk again the ports its
// predecessor used last. The allocator's cursors (one per destination
// slot, dataplane.PortPositions) are saved to a file per network
// namespace, lports-INODE-COOKIE (next to khook's sysctl-INODE.json and
// napi-INODE.json in khook.DefaultStateDir; lports-INODE on a kernel
// without namespace cookies), and a successor over the same range
// continues from them. The kernel hands a dead namespace's inode number
// to the next namespace, never its cookie: a uvsd removes the files of its
// inode number with another cookie, a dead namespace's, and the one with
// none (written before cookies, by this namespace's uvsd or a dead one's:
// it cannot tell, and the positions are only a starting point). Written,
// when they moved since the last write (a uvsd without FULLNAT traffic
// writes nothing):
//
//   - when uvsd stops, once the workers stopped (clean: the positions are
//     exact);
//   - by housekeeping on its slow tick (2 s) while the positions move, so
//     that a crash loses at most that much. A successor of a crash starts
//     each cursor ahead of the saved one by as much as it moved over the
//     interval before the save (the predecessor walked about that much
//     more before it died).
//
// A missing file, one older than lportStateMaxAge (every TIME_WAIT it
// could protect from is over), one for another range, or a malformed one
// (logged) leaves the cursors at their random start; nothing of a
// malformed file is used. `uvsd --cleanup` leaves the file: it is what
// makes the next uvsd after a crash continue, it ages out by itself, and
// /run is emptied at boot.

// lportStateMaxAge is how old a state file may be to be used: far beyond
// TCP_TIMEWAIT_LEN (60 s).
const lportStateMaxAge = 10 * time.Minute

// lportState is the content of a state file.
type lportState = lportfile.State

// errNoLportState: no state file (or none that is a regular file of
// ours).
var errNoLportState = errors.New("no local port state")

// readLportState reads and parses the state file at path, refusing
// (without reading it) anything but a regular file of at most
// lportfile.MaxSize bytes owned by uvsd's user and writable by no one
// else.
func readLportState(path string) (lportState, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return lportState{}, errNoLportState
	}
	if err != nil {
		return lportState{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return lportState{}, err
	}
	if !fi.Mode().IsRegular() {
		return lportState{}, fmt.Errorf("%s: not a regular file (%v)", path, fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return lportState{}, fmt.Errorf("%s: writable by others (%v)", path, fi.Mode().Perm())
	}
	if err := ownedBySelf(fi); err != nil {
		return lportState{}, fmt.Errorf("%s: %w", path, err)
	}
	if fi.Size() > lportfile.MaxSize {
		return lportState{}, fmt.Errorf("%s: %d bytes, more than %d", path, fi.Size(), lportfile.MaxSize)
	}
	b, err := io.ReadAll(io.LimitReader(f, lportfile.MaxSize+1))
	if err != nil {
		return lportState{}, err
	}
	s, err := lportfile.Parse(b)
	if err != nil {
		return lportState{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// writeLportState writes s to path atomically: a new file of mode 0600 in
// the same directory, renamed over path.
func writeLportState(path string, s *lportState) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp") // O_EXCL, 0600
	if err != nil {
		return err
	}
	_, err = f.Write(s.Marshal())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// lportSaver saves an allocator's positions to its state file.
type lportSaver struct {
	path   string
	ports  *dataplane.PortAllocator
	last   dataplane.PortPositions // as last saved (or restored)
	failed bool                    // the last write failed (logged once)
}

// restoreLports moves a's cursors to where the state file at path left
// them, if it is usable (see above), and returns what happened, for the
// log; err is set for a file that was there but is not used.
func restoreLports(a *dataplane.PortAllocator, path string, now time.Time) (string, error) {
	s, err := readLportState(path)
	if errors.Is(err, errNoLportState) {
		return "no saved positions: random start", nil
	}
	if err != nil {
		return "", err
	}
	age := now.Sub(s.Saved)
	if age > lportStateMaxAge || age < -time.Minute {
		return fmt.Sprintf("saved positions of %s are %v old: random start", s.Saved.Format(time.RFC3339), age.Truncate(time.Second)), nil
	}
	if s.Pos.Min != a.Min || s.Pos.Max != a.Max {
		return fmt.Sprintf("saved positions are of range %d-%d, not %d-%d: random start", s.Pos.Min, s.Pos.Max, a.Min, a.Max), nil
	}
	p := s.Pos
	how := "continuing where the previous uvsd stopped"
	if !s.Clean {
		// parseLportState checked both below span.
		span := uint32(a.Max-a.Min) + 1
		for i := range p.Next {
			p.Next[i] = (p.Next[i] + s.Ahead[i]) % span
		}
		how = "continuing past where the previous uvsd was at its last save (it did not stop cleanly)"
	}
	if err := a.SetPositions(p); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return how, nil
}

// save writes the positions when they moved since the last save (or the
// start): a uvsd that made no FULLNAT connection writes no file, and
// leaves the one it started from as it is (its positions and time are
// still those of the last ports used).
func (l *lportSaver) save(now time.Time, clean bool) error {
	p := l.ports.Positions()
	if p == l.last {
		return nil
	}
	s := lportState{Pos: p, Saved: now, Clean: clean}
	span := uint32(p.Max-p.Min) + 1
	for i := range p.Next {
		s.Ahead[i] = (p.Next[i] + span - l.last.Next[i]) % span
	}
	if err := writeLportState(l.path, &s); err != nil {
		return err
	}
	l.last = p
	return nil
}

// lportStatePath is the state file in dir of the namespace with inode
// number ino and cookie (0: unknown).
func lportStatePath(dir string, ino, cookie uint64) string {
	name := "lports-" + strconv.FormatUint(ino, 10)
	if cookie != 0 {
		name += "-" + strconv.FormatUint(cookie, 10)
	}
	return filepath.Join(dir, name)
}

// removeDeadLportStates removes the state files beside path of namespace
// inode number ino (lports-INO and lports-INO-*) but path: a namespace
// with that number and another cookie is gone. It returns the files
// removed; files that are not regular or are another user's are left.
func removeDeadLportStates(path string, ino uint64) ([]string, error) {
	prefix := "lports-" + strconv.FormatUint(ino, 10)
	ents, err := os.ReadDir(filepath.Dir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		name := e.Name()
		if name != prefix && !strings.HasPrefix(name, prefix+"-") || name == filepath.Base(path) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(filepath.Dir(path), name)
		if fi, err := e.Info(); err != nil || ownedBySelf(fi) != nil {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, p)
	}
	return removed, nil
}

// newPorts returns the FULLNAT local port allocator, its cursors where the
// previous uvsd in this network namespace left them when it can.
func (d *Director) newPorts() *dataplane.PortAllocator {
	a := dataplane.NewPortAllocator(d.cfg.LocalPortMin, d.cfg.LocalPortMax)
	path, ino, err := lportStateFile()
	if err != nil {
		d.log.Warn("FULLNAT local port positions are not saved across restarts", errField(err))
		return a
	}
	removed, err := removeDeadLportStates(path, ino)
	if err != nil {
		d.log.Warn("removing FULLNAT local port state files of dead network namespaces", errField(err))
	}
	if len(removed) > 0 {
		d.log.Info("FULLNAT local ports: removed the state files of dead network namespaces with this one's inode number", zap.Strings("files", removed))
	}
	how, err := restoreLports(a, path, time.Now())
	if err != nil {
		d.log.Warn("FULLNAT local ports: ignoring the saved positions: random start", errField(err))
	} else {
		d.log.Info("FULLNAT local ports: "+how, zap.String("state", path))
	}
	d.lports = &lportSaver{path: path, ports: a, last: a.Positions()}
	return a
}

// saveLports saves the FULLNAT local port positions (clean: uvsd stops,
// the workers are stopped). A failed write is logged once until a write
// succeeds again.
func (d *Director) saveLports(clean bool) {
	l := d.lports
	if l == nil {
		return
	}
	err := l.save(time.Now(), clean)
	switch {
	case err != nil && !l.failed:
		d.log.Warn("saving the FULLNAT local port positions for the next uvsd", errField(err))
	case err == nil && l.failed:
		d.log.Info("FULLNAT local port positions saved again", zap.String("state", l.path))
	}
	l.failed = err != nil
}
