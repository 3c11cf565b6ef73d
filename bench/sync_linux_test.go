package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestSyncSmoke runs the connection-sync figure once, briefly: the master
// daemon's datagrams reach the observer, carry the connections, and the
// observer's backup uvsd takes them in; with no daemon nothing is sent. It
// checks behaviour, not speed.
func TestSyncSmoke(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "nft")
	netnstest.RequireTool(t, "taskset")
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "../cmd/uvsd", "../cmd/uvsadm")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building uvsd: %v\n%s", err, out)
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	cfg := DefaultConfig(true)
	cfg.GateWait, cfg.GateSettle = 0, 50*time.Millisecond
	cfg.SyncRounds, cfg.SyncRate, cfg.SyncFlows = 1, 4000, 10000
	cfg.SyncWarm, cfg.SyncWindow = 300*time.Millisecond, time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	h := &harness{cfg: cfg, bin: bin, tmp: t.TempDir(), started: time.Now(), rep: &Report{Method: map[string]string{}}}
	h.topo = NewTopo(netnstest.Prefix+"bs"+hex.EncodeToString(rnd[:])+"-", 2)
	if err := h.topo.Up("1", "2"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.stopAll()
		if err := h.topo.Down(); err != nil {
			t.Errorf("removing the topology: %v", err)
		}
		_, _ = run(cmdTimeout, "ip", "netns", "del", h.topo.Prefix+"obs") // only if syncScale left it
	})
	h.acc = newAccountant([]string{h.topo.Cli}, h.topo.Namespaces()[1:])
	if err := h.syncScale(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/run/netns/" + h.topo.Prefix + "obs"); err == nil {
		t.Error("the observer namespace outlived the figure")
	}
	if h.uvsd != nil {
		t.Error("uvsd still running after the figure")
	}
	runs := map[string]Run{}
	for _, r := range h.rep.Runs {
		if r.Candidate != SyncCandidate {
			t.Errorf("run of %q", r.Candidate)
		}
		if r.Err != "" {
			t.Fatalf("%s: %s", r.Figure, r.Err)
		}
		runs[r.Figure] = r
		t.Logf("%s: %s", r.Figure, describeSync(r))
	}
	off, okOff := runs[FigSyncOff]
	on, okOn := runs[FigSyncOn]
	if !okOff || !okOn || len(h.rep.Runs) != 2 {
		t.Fatalf("runs %+v, want one sync-off and one sync-on", h.rep.Runs)
	}
	if off.Extra["sync_datagrams_per_s"] != 0 || off.Extra["new_conns_per_s"] <= 0 {
		t.Errorf("sync off: %v datagrams/s, %v new conn/s", off.Extra["sync_datagrams_per_s"], off.Extra["new_conns_per_s"])
	}
	x := on.Extra
	if x["sync_datagrams_per_s"] <= 0 || x["entries_per_datagram"] < 1 || x["sync_bad"] != 0 {
		t.Errorf("sync on: %v datagrams/s, %v entries each, %v bad", x["sync_datagrams_per_s"], x["entries_per_datagram"], x["sync_bad"])
	}
	if x["total_entries"] <= 0 || x["total_entries"] > x["total_conns"] || x["missing_entries"] < 0 {
		t.Errorf("sync on: %v entries for %v connections", x["total_entries"], x["total_conns"])
	}
	if x["backup_live"] <= 0 {
		t.Errorf("the backup uvsd holds no synced connection at the window's end")
	}
	if !(float64(on.Value) > 0) || !(x["uvsd_us_per_pkt"] > 0) {
		t.Errorf("no CPU cost measured: %v, uvsd %v", on.Value, x["uvsd_us_per_pkt"])
	}
}
