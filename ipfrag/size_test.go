package ipfrag

import (
	"testing"
	"unsafe"
)

// TestQueueSize checks that a queue is no larger than what the memory
// budget charges for it.
func TestQueueSize(t *testing.T) {
	if s := unsafe.Sizeof(queue{}); s > queueBytes {
		t.Fatalf("queue is %d bytes, charged %d", s, queueBytes)
	}
}
