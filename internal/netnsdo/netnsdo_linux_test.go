package netnsdo_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/uvs-lb/uvs/internal/netnsdo"
	"github.com/uvs-lb/uvs/internal/netnstest"
)

// inode returns the inode of the network namespace at path.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// threadNetNS returns the inode of the calling thread's network namespace.
// The caller must hold the OS thread locked.
func threadNetNS() (uint64, error) {
	fi, err := os.Stat("/proc/thread-self/ns/net")
	if err != nil {
		return 0, err
	}
	return fi.Sys().(*syscall.Stat_t).Ino, nil
}

// callerNetNS is threadNetNS on the test's goroutine, locked for the read.
func callerNetNS(t *testing.T) uint64 {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ino, err := threadNetNS()
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

func TestDoRunsInsideNamespace(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	ns := netnstest.New(t, "nd")
	want := inode(t, filepath.Join(netnsdo.Dir, ns.Name))
	host := callerNetNS(t)
	if want == host {
		t.Fatalf("namespace %s has the caller's inode %d", ns.Name, host)
	}

	var got uint64
	err := netnsdo.Do(ns.Name, func() error {
		var err error
		got, err = threadNetNS()
		return err
	})
	if err != nil {
		t.Fatalf("Do(%s): %v", ns.Name, err)
	}
	if got != want {
		t.Errorf("fn ran in namespace inode %d, want %d (%s); caller is %d", got, want, ns.Name, host)
	}
	if after := callerNetNS(t); after != host {
		t.Errorf("caller's namespace changed: inode %d, was %d", after, host)
	}
	checkThreadsInHost(t, host)
}

func TestDoHandle(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	ns := netnstest.New(t, "nh")
	want := inode(t, filepath.Join(netnsdo.Dir, ns.Name))
	host := callerNetNS(t)
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	var got uint64
	if err := netnsdo.DoHandle(h, func() error {
		var err error
		got, err = threadNetNS()
		return err
	}); err != nil {
		t.Fatalf("DoHandle: %v", err)
	}
	if got != want {
		t.Errorf("fn ran in namespace inode %d, want %d", got, want)
	}
	if after := callerNetNS(t); after != host {
		t.Errorf("caller's namespace changed: inode %d, was %d", after, host)
	}
	if !h.IsOpen() {
		t.Error("DoHandle closed the caller's handle")
	}
	checkThreadsInHost(t, host)
}

func TestDoReturnsFnError(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	ns := netnstest.New(t, "ne")
	errFn := errors.New("fn failed")
	err := netnsdo.Do(ns.Name, func() error { return errFn })
	if !errors.Is(err, errFn) {
		t.Fatalf("Do = %v, want %v", err, errFn)
	}
	if errors.Is(err, netnsdo.ErrRestore) {
		t.Fatalf("Do = %v: restore reported as failed", err)
	}
}

func TestDoMissingNamespace(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	const name = "uvs-tnd-does-not-exist"
	ran := false
	err := netnsdo.Do(name, func() error { ran = true; return nil })
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("Do(%s) = %v, want an error naming the namespace", name, err)
	}
	if ran {
		t.Fatal("fn ran although the namespace does not exist")
	}
}

// checkThreadsInHost locks a batch of goroutines to threads at once and
// checks that each thread is in the host namespace: a thread left switched
// by Do and handed back to the scheduler would show up here.
func checkThreadsInHost(t *testing.T, host uint64) {
	t.Helper()
	const n = 16
	type res struct {
		ino uint64
		err error
	}
	out := make(chan res, n)
	release := make(chan struct{})
	for range n {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ino, err := threadNetNS()
			out <- res{ino, err}
			<-release // hold the thread so the others get different ones
		}()
	}
	defer close(release)
	for range n {
		r := <-out
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.ino != host {
			t.Errorf("a thread is in namespace inode %d, want host %d", r.ino, host)
		}
	}
}
