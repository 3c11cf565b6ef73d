// Package netnsdo runs a function inside another network namespace on a
// throw-away OS thread.
//
// The thread is locked, switched into the target namespace, runs fn, and is
// switched back. If switching into the target or back fails, the thread is
// left locked: its goroutine exits, and the Go runtime destroys a thread
// that exits locked instead of reusing it in the wrong namespace. Sockets
// fn creates stay in the target namespace and may be used from any
// goroutine afterwards.
//
//	err := netnsdo.Do("uvs-lab-dir", func() error {
//		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
//		return err
//	})
package netnsdo

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Dir is where ip(8) keeps named network namespaces.
const Dir = "/run/netns"

// ErrRestore is wrapped in the error of Do and DoHandle when the thread could
// not return to its original namespace (fn ran; the thread was discarded).
var ErrRestore = errors.New("could not restore the thread's network namespace")

// Do runs fn inside the namespace Dir/name and waits for it. It returns an
// error naming the namespace if the namespace cannot be opened or entered,
// fn's error otherwise, joined with an ErrRestore error if the thread could
// not switch back.
func Do(name string, fn func() error) error {
	target, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("open network namespace %s/%s: %w", Dir, name, err)
	}
	defer target.Close()
	return run(target, "network namespace "+name, fn)
}

// DoHandle is Do for an already open namespace handle. The handle stays
// open; the caller closes it.
func DoHandle(h netns.NsHandle, fn func() error) error {
	return run(h, "network namespace "+h.String(), fn)
}

func run(target netns.NsHandle, what string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			// Nothing was switched yet: the thread is still clean.
			runtime.UnlockOSThread()
			done <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			// The thread may be half-switched: let it die locked.
			done <- fmt.Errorf("enter %s: %w", what, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it exits with this goroutine.
			done <- errors.Join(ferr, fmt.Errorf("leave %s: %w: %w", what, ErrRestore, err))
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}
