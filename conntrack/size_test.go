package conntrack

import (
	"testing"
	"unsafe"
)

// The entry is two cache lines and the index bucket one; the lock, the
// mutable state, the timer and the inbound key share the entry's first
// line, so that a lookup by inbound key and its state update touch one
// line (Track then copies the rest out).
func TestLayout(t *testing.T) {
	var e entry
	t.Logf("entry %d bytes, bucket %d bytes, Key %d bytes, Conn %d bytes",
		unsafe.Sizeof(e), unsafe.Sizeof(bucket{}), unsafe.Sizeof(Key{}), unsafe.Sizeof(Conn{}))
	if s := unsafe.Sizeof(e); s != 128 {
		t.Errorf("entry is %d bytes, want 128 (two cache lines; budget 160 per conn with the index)", s)
	}
	if s := unsafe.Sizeof(bucket{}); s != 64 {
		t.Errorf("bucket is %d bytes, want 64 (one cache line)", s)
	}
	firstLine := map[string]uintptr{
		"lk": unsafe.Offsetof(e.lk) + 4, "timeout": unsafe.Offsetof(e.timeout) + 4,
		"expires": unsafe.Offsetof(e.expires) + 8, "flags": unsafe.Offsetof(e.flags) + 2,
		"state": unsafe.Offsetof(e.state) + 1, "proto": unsafe.Offsetof(e.proto) + 1,
		"tmpl": unsafe.Offsetof(e.tmpl) + 1, "cport": unsafe.Offsetof(e.cport) + 2,
		"vport": unsafe.Offsetof(e.vport) + 2, "caddr": unsafe.Offsetof(e.caddr) + 16,
		"vaddr": unsafe.Offsetof(e.vaddr) + 16,
	}
	for f, end := range firstLine {
		if end > 64 {
			t.Errorf("entry.%s ends at byte %d, outside the first cache line", f, end)
		}
	}
}

// The arena and the index of a large table start on a cache-line
// boundary, so that no entry or bucket straddles an extra line.
func TestAlignment(t *testing.T) {
	tb, err := New(Config{Capacity: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	if a := uintptr(unsafe.Pointer(&tb.ents[0])) % 64; a != 0 {
		t.Errorf("arena at offset %d in its cache line", a)
	}
	if a := uintptr(unsafe.Pointer(&tb.buckets[0])) % 64; a != 0 {
		t.Errorf("index at offset %d in its cache line", a)
	}
}
