package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"
)

// FileCheck is keepalived's FILE_CHECK (track_file.c): the real server
// follows an integer kept in a file. keepalived watches the file with
// inotify; a Prober is poll-style, so Probe reads the file now, and the
// director calls it when the file changes (WatchFile polls for that on
// any OS) and at start.
//
// The value is read like keepalived's strtol(buf, NULL, 0) of the file's
// first 127 bytes (ParseTrackFileValue): a missing, unreadable or empty
// file, or one without a number, reads 0; a number outside
// [−2^31, 2^31] is ignored and the previous value is kept.
//
//	Weight 0:            value ≠ 0 → down (with Reverse: value = 0 → down); no weight
//	Weight W:            contribution = value × W (× −1 with Reverse), clamped to int32;
//	                     −2^31 → down, else success with Weight = contribution (HasWeight),
//	                     which keepalived adds to the real server's weight
type FileCheck struct {
	// Path is the track_file's `file`.
	Path string
	// Weight and Reverse are `weight W [reverse]` (−2^31+1 … 2^31−1).
	Weight  int32
	Reverse bool

	mu   sync.Mutex
	last int64 // the last valid value read
}

// fileMaxRead is how much of the file keepalived reads.
const fileMaxRead = 127

// Probe reads the file and turns its value into a Result.
func (f *FileCheck) Probe(ctx context.Context, t Target) Result {
	v, note := f.read()
	r := FileCheckResult(v, f.Weight, f.Reverse)
	r.Msg = fmt.Sprintf("Track file %s: value %d%s, %s.", f.Path, v, note, map[bool]string{true: "up", false: "down"}[r.OK])
	return r
}

// read returns the file's value, keeping the previous one when the file
// holds an out-of-range number.
func (f *FileCheck) read() (int64, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := int64(0)
	note := ""
	if fh, err := os.Open(f.Path); err == nil {
		buf := make([]byte, fileMaxRead)
		n, _ := io.ReadAtLeast(fh, buf, 1)
		fh.Close()
		if n > 0 {
			var ok bool
			if v, ok = ParseTrackFileValue(buf[:n]); !ok {
				return f.last, fmt.Sprintf(" (invalid number %q ignored)", buf[:n])
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		note = fmt.Sprintf(" (%v)", err)
	}
	f.last = v
	return v, note
}

// FileCheckResult applies a value to the checker's weight
// (update_track_file_status).
func FileCheckResult(v int64, weight int32, reverse bool) Result {
	if weight == 0 {
		return Result{OK: (v != 0) == reverse}
	}
	c := v * int64(weight)
	if reverse {
		c = -c
	}
	c = max(min(c, math.MaxInt32), math.MinInt32)
	if c == math.MinInt32 {
		return Result{}
	}
	return Result{OK: true, Weight: int(c), HasWeight: true}
}

// ParseTrackFileValue parses a tracked file's content as C's
// strtol(s, NULL, 0) does, then applies keepalived's range check: leading
// white space, an optional sign, then 0x/0X (hex), 0 (octal) or decimal
// digits, stopping at the first other byte; no digits reads 0. ok is false
// when the number lies outside [−2^31, 2^31] (strtol's overflow included).
func ParseTrackFileValue(b []byte) (v int64, ok bool) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] >= '\t' && b[i] <= '\r') {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	base := uint64(10)
	switch {
	case i+2 < len(b) && b[i] == '0' && (b[i+1] == 'x' || b[i+1] == 'X') && miscIsHex(b[i+2]):
		base, i = 16, i+2
	case i < len(b) && b[i] == '0':
		base = 8
	}
	const limit = 1 << 31
	var u uint64
	for ; i < len(b); i++ {
		var d uint64
		switch c := b[i]; {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case base == 16 && miscIsHex(c):
			d = uint64(miscHexNibble(c))
		default:
			d = base
		}
		if d >= base {
			break
		}
		u = u*base + d
		if u > limit {
			return 0, false
		}
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

// WatchFile calls changed whenever path's size, modification time or
// existence changes, checking every interval, until ctx is done: the
// portable stand-in for keepalived's inotify watch. It calls changed once
// at the start.
func WatchFile(ctx context.Context, path string, interval time.Duration, changed func()) {
	type state struct {
		exists bool
		size   int64
		mtime  time.Time
	}
	get := func() state {
		fi, err := os.Stat(path)
		if err != nil {
			return state{}
		}
		return state{true, fi.Size(), fi.ModTime()}
	}
	last := get()
	changed()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if s := get(); s != last {
			last = s
			changed()
		}
	}
}
