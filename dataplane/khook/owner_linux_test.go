package khook

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/uvs-lb/uvs/internal/wait"
)

// unknownTableFlag is a table flag no kernel knows: creating a table with
// it fails as creating an owned table fails before Linux 5.12.
const unknownTableFlag = 0x80000000

func withOwnerFlag(t *testing.T, f uint32) {
	t.Helper()
	old := ownerFlag
	ownerFlag = f
	t.Cleanup(func() { ownerFlag = old })
}

// tableFlags returns the flags of the uvs table, and whether it exists.
// (google/nftables v0.3.0 decodes NFTA_TABLE_FLAGS, a big-endian number,
// in host byte order: swapped back here.)
func tableFlags(t *testing.T, c *nftables.Conn) (uint32, bool) {
	t.Helper()
	tabs, err := c.ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range tabs {
		if x.Name == TableName {
			f := x.Flags
			if binary.NativeEndian.Uint32([]byte{0, 0, 0, 1}) != 1 { // little-endian host
				f = bits.ReverseBytes32(f)
			}
			return f, true
		}
	}
	return 0, false
}

// TestTableDiesWithOwner: the table is owned by the Hooks' socket; when
// the socket goes — as when the process is killed — the kernel deletes the
// table, and the director's stack answers the VIP again.
func TestTableDiesWithOwner(t *testing.T) {
	tp := newTopo(t)
	h := New(Options{NetNS: tp.dir.h})
	t.Cleanup(func() { _ = h.Remove() })
	if err := h.Apply(baseSpec()); err != nil {
		t.Fatal(err)
	}
	if !h.Owned() || h.Fallback() != nil {
		t.Fatalf("Owned %v, Fallback %v: want an owned table on this kernel", h.Owned(), h.Fallback())
	}
	c := tp.conn(t)
	if f, ok := tableFlags(t, c); !ok || f&tableFlagOwner == 0 {
		t.Fatalf("table flags %#x (exists %v), want the owner flag", f, ok)
	}
	wantNoAnswer(t, tp.peer, netip.AddrPortFrom(vip4, 80))

	// Another socket can neither change nor delete it.
	c.AddSet(&nftables.Set{Table: table(), Name: "intruder", KeyType: nftables.TypeIPAddr}, nil)
	if err := c.Flush(); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("adding a set from another socket: %v, want EPERM", err)
	}
	if err := CleanupNetNS(tp.dir.h); !errors.Is(err, ErrTableBusy) {
		t.Fatalf("cleanup while the owner lives: %v, want ErrTableBusy", err)
	}
	// A second Hooks (a second uvsd) is refused, and changes nothing.
	h2 := New(Options{NetNS: tp.dir.h})
	if err := h2.Apply(baseSpec()); !errors.Is(err, ErrTableBusy) {
		t.Fatalf("second Hooks' Apply: %v, want ErrTableBusy", err)
	}
	if _, ok := tableFlags(t, c); !ok {
		t.Fatal("the second Hooks' attempt removed the table")
	}

	// The process dies: its sockets close without a word.
	h.mu.Lock()
	_ = h.lasting.close()
	h.mu.Unlock()
	wait.For(t, 5*time.Second, func() bool { _, ok := tableFlags(t, c); return !ok },
		"the kernel to delete the table of the closed owner socket")
	wantRefused(t, tp.peer, netip.AddrPortFrom(vip4, 80))
}

// TestOwnerFallback: a kernel that refuses the owner flag gets today's
// unowned table, changed through short-lived sockets, and says so; a table
// deleted behind its back is rebuilt by the next Apply.
func TestOwnerFallback(t *testing.T) {
	tp := newTopo(t)
	withOwnerFlag(t, unknownTableFlag)
	h := New(Options{NetNS: tp.dir.h})
	t.Cleanup(func() { _ = h.Remove() })
	s := baseSpec()
	if err := h.Apply(s); err != nil {
		t.Fatal(err)
	}
	if h.Owned() || !errors.Is(h.Fallback(), syscall.EOPNOTSUPP) {
		t.Fatalf("Owned %v, Fallback %v: want the fallback (EOPNOTSUPP)", h.Owned(), h.Fallback())
	}
	c := tp.conn(t)
	if f, ok := tableFlags(t, c); !ok || f != 0 {
		t.Fatalf("table flags %#x (exists %v), want an unowned table", f, ok)
	}
	wantNoAnswer(t, tp.peer, netip.AddrPortFrom(vip4, 80))
	if err := Cleanup(c); err != nil {
		t.Fatal(err)
	}
	if err := h.Apply(s); err != nil {
		t.Fatalf("Apply after external delete: %v", err)
	}
	if es := setElems(t, c, "svc6_d0"); len(es) != 1 {
		t.Fatalf("svc6 after rebuild: %d elements, want 1", len(es))
	}
	if err := h.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, ok := tableFlags(t, c); ok {
		t.Fatal("table left after Remove")
	}
}

// TestOwnedReplacesLeftover: a table a predecessor left unowned is
// replaced by an owned one.
func TestOwnedReplacesLeftover(t *testing.T) {
	tp := newTopo(t)
	c := tp.conn(t)
	c.AddTable(table())
	c.AddChain(&nftables.Chain{Name: "stale", Table: table()})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	h := New(Options{NetNS: tp.dir.h})
	t.Cleanup(func() { _ = h.Remove() })
	if err := h.Apply(baseSpec()); err != nil {
		t.Fatal(err)
	}
	if f, ok := tableFlags(t, c); !ok || f&tableFlagOwner == 0 {
		t.Fatalf("table flags %#x (exists %v), want the owner flag", f, ok)
	}
	if names := chainNames(t, c); len(names) != 3 || names[0] != "icmp4_d0" {
		t.Fatalf("chains %v, want d0's three (the stale chain gone)", names)
	}
}
