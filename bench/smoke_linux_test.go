package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestSmoke builds the benchmark topology, runs the generator against the
// ceiling sink, plain kernel forwarding and uvs-nat for a short window
// each, and checks that packets were delivered and counted. It measures
// behaviour, not speed: no figure is compared with anything.
// buildUVS builds uvsd, uvs-rs and uvsadm into a temporary directory.
func buildUVS(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "../cmd/uvsd", "../cmd/uvs-rs", "../cmd/uvsadm")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building uvsd: %v\n%s", err, out)
	}
	return bin
}

// upTopo builds a benchmark topology (two real servers) for a test and
// removes it at the test's end.
func upTopo(t *testing.T, cfg Config, bin string) *harness {
	t.Helper()
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
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
	return h
}

func TestSmoke(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "nft")
	netnstest.RequireTool(t, "taskset")
	bin := buildUVS(t)
	cfg := DefaultConfig(true)
	cfg.UDPWarm, cfg.UDPWindow = 200*time.Millisecond, 500*time.Millisecond
	cfg.GateWait, cfg.GateSettle = 0, 50*time.Millisecond
	cfg.Flows = 512
	cfg.TCPOnly, cfg.IperfRuns = []string{"none"}, 0 // UDP only: no wrk, nginx or iperf3 needed
	h := upTopo(t, cfg, bin)
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

// TestReplyPath checks where the real servers' replies go: for uvs-dr and
// uvs-tun through the router namespace, never into the director (its
// real-server links receive nothing while connections are answered); for
// uvs-nat, and the DR comparison variant, through the director.
func TestReplyPath(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "nft")
	netnstest.RequireTool(t, "taskset")
	h := upTopo(t, DefaultConfig(true), buildUVS(t))
	const reply = 4096
	for _, be := range h.topo.Backends {
		var ln net.Listener
		if err := inNetNS(be.NS, func() (err error) {
			ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", HTTPPort))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					var b [1]byte
					if _, err := io.ReadFull(c, b[:]); err == nil {
						_, _ = c.Write(make([]byte, reply))
					}
				}()
			}
		}()
	}
	byName := map[string]*candidate{}
	for _, c := range h.candidates() {
		byName[c.name] = c
	}
	// counters sums the director's and the router's receive counters on
	// their real-server links.
	counters := func() (dir, rtr uint64) {
		for _, be := range h.topo.Backends {
			d, err := linkStats(h.topo.Dir, be.DirDev)
			if err != nil {
				t.Fatal(err)
			}
			r, err := linkStats(h.topo.Rtr, be.RtrDev)
			if err != nil {
				t.Fatal(err)
			}
			dir += d.RxPackets
			rtr += r.RxPackets
		}
		return dir, rtr
	}
	const conns = 20
	for _, tc := range []struct{ name, want string }{
		{"uvs-dr", ReplyViaRouter}, {"uvs-tun", ReplyViaRouter}, {"uvs-nat", ReplyViaDirector}, {"uvs-dr-dirgw", ReplyViaDirector},
		{"kernel-forward-rtr", ReplyViaRouter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := byName[tc.name]
			if c.reply != tc.want {
				t.Fatalf("%s's reply path is %q, want %q", tc.name, c.reply, tc.want)
			}
			if err := c.setup(h); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := c.teardown(h); err != nil {
					t.Errorf("teardown: %v", err)
				}
			}()
			dir0, rtr0 := counters()
			for i := range conns {
				var conn net.Conn
				if err := inNetNS(h.topo.Cli, func() (err error) {
					conn, err = net.DialTimeout("tcp4", net.JoinHostPort(c.httpHost, strconv.Itoa(HTTPPort)), 5*time.Second)
					return err
				}); err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, err := conn.Write([]byte{'x'})
				var got []byte
				if err == nil {
					got, err = io.ReadAll(conn)
				}
				_ = conn.Close()
				if err != nil || len(got) != reply {
					t.Fatalf("connection %d: %d bytes of %d, %v", i, len(got), reply, err)
				}
			}
			dir1, rtr1 := counters()
			dir, rtr := dir1-dir0, rtr1-rtr0
			t.Logf("%s: %d connections; the director's real-server links received %d frames, the router's %d", tc.name, conns, dir, rtr)
			// Each connection's replies are at least a SYN-ACK, the data
			// and a FIN.
			switch tc.want {
			case ReplyViaRouter:
				if dir != 0 || rtr < 3*conns {
					t.Errorf("replies crossed the director: its real-server links received %d frames, the router's %d", dir, rtr)
				}
			case ReplyViaDirector:
				if rtr != 0 || dir < 3*conns {
					t.Errorf("replies did not cross the director: its real-server links received %d frames, the router's %d", dir, rtr)
				}
			}
		})
	}
	// The connections above leave TIME_WAIT sockets on the real servers
	// (they close first); flushTimeWait, run before every TCP figure,
	// kills them all (timewait.go).
	timeWait := func() int {
		n := 0
		for _, ns := range h.topo.Namespaces() {
			out, err := nsRun(cmdTimeout, ns, -1, "ss", "-Htn", "state", "time-wait")
			if err != nil {
				t.Fatal(err)
			}
			n += strings.Count(out, "\n")
		}
		return n
	}
	if n := timeWait(); n == 0 {
		t.Fatal("no TIME_WAIT socket after the connections: nothing to flush")
	}
	if err := h.flushTimeWait(); err != nil {
		t.Fatal(err)
	}
	if n := timeWait(); n != 0 {
		t.Errorf("%d TIME_WAIT sockets left after flushTimeWait", n)
	}
	if _, err := h.pawsRejects(); err != nil {
		t.Error(err)
	}
}
