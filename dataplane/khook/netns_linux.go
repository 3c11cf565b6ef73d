package khook

import (
	"github.com/vishvananda/netns"

	"github.com/uvs-lb/uvs/internal/netnsdo"
)

// inNetNS runs fn on a throw-away OS thread switched into ns (or on the
// calling goroutine when ns is unset). If switching back fails the thread is
// left locked, so the runtime destroys it instead of reusing it in the wrong
// namespace.
func inNetNS(ns netns.NsHandle, fn func() error) error {
	if ns <= 0 {
		return fn()
	}
	return netnsdo.DoHandle(ns, fn)
}
