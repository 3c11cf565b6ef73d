//go:build !purego

package conntrack

import "unsafe"

// prefetchLine asks the CPU to bring the cache line at p into its cache
// (PREFETCHT0). Unlike a load, a prefetch is never waited for: the locked
// instruction of a later entry lock does not stall on it, so the prefetches
// TrackBatch issues for the next packets overlap with tracking the current
// one. Go has no portable prefetch, hence these few lines of assembly; the
// purego build tag replaces them with no-ops.
//
//go:noescape
func prefetchLine(p unsafe.Pointer)

// prefetchLines2 prefetches the line at p and the next one: both lines of
// an entry.
//
//go:noescape
func prefetchLines2(p unsafe.Pointer)
