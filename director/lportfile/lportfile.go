// Package lportfile is the format of uvsd's FULLNAT local port state
// file (lports-INODE-COOKIE, see director): the allocator's cursors saved across
// a restart. It links only the data plane whose positions it holds, so
// its fuzz target runs in a smaller binary than the daemon's.
package lportfile

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/uvs-lb/uvs/dataplane"
)

// MaxSize bounds the file read: a valid one is under 4 KB
// (two lines of 256 numbers below 65536).
const MaxSize = 16 << 10

// Magic is the file's first line.
const Magic = "uvs-lports 1"

// State is the content of a state file.
type State struct {
	Pos   dataplane.PortPositions
	Saved time.Time // when it was written (wall clock, to the second)
	Clean bool      // written at a clean stop: Pos is exact
	// Ahead is, per slot, how far the cursor moved over the save interval
	// before Saved (used only when !Clean).
	Ahead [dataplane.NumPortSlots]uint32
}

// Marshal returns the file's text:
//
//	uvs-lports 1
//	range MIN MAX
//	saved UNIX-SECONDS
//	clean 0|1
//	next N0 … N255
//	ahead A0 … A255
func (s State) Marshal() []byte {
	b := make([]byte, 0, 4096)
	b = append(b, Magic+"\nrange "...)
	b = strconv.AppendUint(b, uint64(s.Pos.Min), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(s.Pos.Max), 10)
	b = append(b, "\nsaved "...)
	b = strconv.AppendInt(b, s.Saved.Unix(), 10)
	b = append(b, "\nclean "...)
	if s.Clean {
		b = append(b, '1')
	} else {
		b = append(b, '0')
	}
	for _, l := range []struct {
		key string
		v   *[dataplane.NumPortSlots]uint32
	}{{"next", &s.Pos.Next}, {"ahead", &s.Ahead}} {
		b = append(b, '\n')
		b = append(b, l.key...)
		for _, n := range l.v {
			b = append(b, ' ')
			b = strconv.AppendUint(b, uint64(n), 10)
		}
	}
	return append(b, '\n')
}

// Parse parses a state file's text. Anything but exactly what
// Marshal writes (a valid range, positions within it) is an error and
// nothing of it is returned.
func Parse(b []byte) (State, error) {
	var s State
	if len(b) > MaxSize {
		return State{}, fmt.Errorf("%d bytes, more than %d", len(b), MaxSize)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return State{}, errors.New("not newline-terminated")
	}
	lines := bytes.Split(b[:len(b)-1], []byte("\n"))
	if len(lines) != 6 {
		return State{}, fmt.Errorf("%d lines, want 6", len(lines))
	}
	if string(lines[0]) != Magic {
		return State{}, fmt.Errorf("first line %.40q, want %q", lines[0], Magic)
	}
	// fields returns the numbers of line i, which starts with key.
	fields := func(i int, key string, n, bits int) ([]uint64, error) {
		f := bytes.Split(lines[i], []byte(" "))
		if string(f[0]) != key {
			return nil, fmt.Errorf("line %d: %.20q, want %q", i+1, f[0], key)
		}
		if len(f)-1 != n {
			return nil, fmt.Errorf("line %d (%s): %d values, want %d", i+1, key, len(f)-1, n)
		}
		v := make([]uint64, n)
		for j, x := range f[1:] {
			u, err := strconv.ParseUint(string(x), 10, bits)
			if err != nil {
				return nil, fmt.Errorf("line %d (%s): value %d: %w", i+1, key, j+1, err)
			}
			v[j] = u
		}
		return v, nil
	}
	r, err := fields(1, "range", 2, 16)
	if err != nil {
		return State{}, err
	}
	if r[0] == 0 || r[1] < r[0] {
		return State{}, fmt.Errorf("range %d-%d", r[0], r[1])
	}
	s.Pos.Min, s.Pos.Max = uint16(r[0]), uint16(r[1])
	span := r[1] - r[0] + 1
	saved, err := fields(2, "saved", 1, 63)
	if err != nil {
		return State{}, err
	}
	s.Saved = time.Unix(int64(saved[0]), 0)
	clean, err := fields(3, "clean", 1, 1)
	if err != nil {
		return State{}, err
	}
	s.Clean = clean[0] == 1
	for i, l := range []struct {
		key string
		v   *[dataplane.NumPortSlots]uint32
	}{{"next", &s.Pos.Next}, {"ahead", &s.Ahead}} {
		v, err := fields(4+i, l.key, dataplane.NumPortSlots, 32)
		if err != nil {
			return State{}, err
		}
		for j, n := range v {
			if n >= span {
				return State{}, fmt.Errorf("%s %d of slot %d is beyond range %d-%d", l.key, n, j, r[0], r[1])
			}
			l.v[j] = uint32(n)
		}
	}
	return s, nil
}
