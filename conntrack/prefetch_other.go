//go:build !amd64 || purego

package conntrack

import "unsafe"

// Without an assembly prefetch TrackBatch is a loop over Track.

func prefetchLine(unsafe.Pointer)   {}
func prefetchLines2(unsafe.Pointer) {}
