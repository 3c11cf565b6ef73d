package realserver

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st, err := LoadState(dir)
	if err != nil || !st.Empty() || st.Saved == nil {
		t.Fatalf("missing state: %+v, %v", st, err)
	}
	st = &State{
		NetNSInode: 4026531840, NetNSCookie: 1,
		DR:    []DRVIP{{VIP: netip.MustParseAddr("192.0.2.10"), Dev: "lo"}, {VIP: netip.MustParseAddr("2001:db8::10"), Dev: "lo", Existed: true}},
		Tun:   &TunState{Mode: TunUserspace, Dev: "uvstun0", VIPs: []netip.Addr{netip.MustParseAddr("192.0.2.11")}, GUEPort: 6080, PID: 42, StartTime: 99},
		Saved: map[string]string{"net/ipv4/conf/all/arp_ignore": "0"},
	}
	if err := SaveState(dir, st); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("loaded %+v, want %+v", got, st)
	}
	if !got.HasDR(netip.MustParseAddr("2001:db8::10")) || got.HasDR(netip.MustParseAddr("192.0.2.11")) {
		t.Fatal("HasDR wrong")
	}
	// Nothing configured and nothing to restore: the file goes away.
	if err := SaveState(dir, &State{Saved: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("state file still there: %v", err)
	}
	// A corrupt file is an error, not an empty state.
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(dir); err == nil {
		t.Fatal("corrupt state loaded")
	}
}
