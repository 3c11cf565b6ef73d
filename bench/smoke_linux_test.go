package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestSmoke builds the benchmark topology, runs the generator against the
// ceiling sink, plain kernel forwarding and uvs-nat for a short window
// each, and checks that packets were delivered and counted. It measures
// behaviour, not speed: no figure is compared with anything.
func TestSmoke(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "nft")
	netnstest.RequireTool(t, "taskset")
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "../cmd/uvsd", "../cmd/uvs-rs", "../cmd/uvsadm")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building uvsd: %v\n%s", err, out)
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	cfg := DefaultConfig(true)
	cfg.UDPWarm, cfg.UDPWindow = 200*time.Millisecond, 500*time.Millisecond
	cfg.GateWait, cfg.GateSettle = 0, 50*time.Millisecond
	cfg.Flows = 512
	cfg.TCPOnly, cfg.IperfRuns = []string{"none"}, 0 // UDP only: no wrk, nginx or iperf3 needed
	h := &harness{cfg: cfg, bin: bin, tmp: t.TempDir(), started: time.Now(), rep: &Report{}}
	// netnstest's prefix, so leftovers are recognised as test namespaces.
	h.topo = NewTopo(netnstest.Prefix+"bn"+hex.EncodeToString(rnd[:])+"-", 2)
	if err := h.topo.Up("1", "2"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.stopAll()
		if err := h.topo.Down(); err != nil {
			t.Errorf("removing the topology: %v", err)
		}
	})
	h.acc = newAccountant([]string{h.topo.Cli}, h.topo.Namespaces()[1:])
	byName := map[string]*candidate{}
	for _, c := range h.candidates() {
		byName[c.name] = c
	}
	ctx := context.Background()
	for _, name := range []string{"generator-ceiling", "kernel-forward", "uvs-nat"} {
		c := byName[name]
		// The real servers' sinks outlive the slot (the ceiling's counter
		// on the director does not).
		before, err := h.topo.Delivered()
		if err != nil {
			t.Fatal(err)
		}
		h.slot(ctx, c, 0)
		after, err := h.topo.Delivered()
		if err != nil {
			t.Fatal(err)
		}
		var sat, paced *Run
		for i := range h.rep.Runs {
			r := &h.rep.Runs[i]
			if r.Candidate != name {
				continue
			}
			if r.Err != "" {
				t.Errorf("%s %s: %s", name, r.Figure, r.Err)
			}
			switch r.Figure {
			case FigUDPSat:
				sat = r
			case FigUDPRate:
				paced = r
			}
		}
		if sat == nil || paced == nil {
			t.Fatalf("%s: missing UDP runs: %+v", name, h.rep.Runs)
		}
		if float64(sat.Value) <= 0 || paced.Extra["delivered_pps"] <= 0 {
			t.Errorf("%s: nothing delivered: saturated %v pps, paced %v pps", name, sat.Value, paced.Extra["delivered_pps"])
		}
		// Counted at the real servers' sinks: at least what the two windows
		// report, and nothing when the director drops everything.
		window := (float64(sat.Value) + paced.Extra["delivered_pps"]) * cfg.UDPWindow.Seconds() * 0.9
		switch got := float64(after - before); {
		case c.ceiling && got != 0:
			t.Errorf("%s: real servers counted %.0f packets, want 0", name, got)
		case !c.ceiling && got < window:
			t.Errorf("%s: sinks counted %.0f packets, the windows reported %.0f", name, got, window)
		}
		// The paced run offers no more than asked for.
		if paced.Extra["gen_pps"] > 1.2*cfg.CPURate {
			t.Errorf("%s: paced generator sent %.0f pps, asked for %.0f", name, paced.Extra["gen_pps"], cfg.CPURate)
		}
		if v := float64(paced.Value); !(v > 0) {
			t.Errorf("%s: no CPU cost measured (%v)", name, v)
		}
		t.Logf("%s: %s; %s", name, describe(*sat), describe(*paced))
	}
	// uvsd stopped cleanly and took its kernel hooks with it.
	if out, err := nsRun(cmdTimeout, h.topo.Dir, -1, "nft", "list", "tables"); err != nil || strings.Contains(out, "netdev uvs") {
		t.Fatalf("after uvs-nat the director has: %s %v", out, err)
	}
}
