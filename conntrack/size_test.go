package conntrack

import (
	"testing"
	"unsafe"
)

func TestEntrySize(t *testing.T) {
	t.Logf("entry %d bytes, Key %d bytes, Conn %d bytes", unsafe.Sizeof(entry{}), unsafe.Sizeof(Key{}), unsafe.Sizeof(Conn{}))
	if s := unsafe.Sizeof(entry{}); s > 144 {
		t.Errorf("entry is %d bytes, want <= 144 (budget 160 per conn with the index)", s)
	}
}
