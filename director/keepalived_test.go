package director

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/healthcheck"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/keepalived"
)

const kaTestConf = `virtual_server 10.0.1.100 80 {
    delay_loop 1
    retry 1
    delay_before_retry 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    sorry_server 10.0.9.9 80
    real_server 10.0.2.11 80 {
        weight 1
        notify_down "/usr/local/bin/rs-down 10.0.2.11"
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 10.0.2.12 80 {
        weight 1
        inhibit_on_failure
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`

// TestKeepalivedPool plays checker verdicts on a fake clock against a
// real control State: removal, inhibit_on_failure's weight 0, quorum loss
// with the sorry server, quorum gain, the notify script and the log lines.
func TestKeepalivedPool(t *testing.T) {
	cfg, st := startTable(t, kaTestConf)
	var mu sync.Mutex
	up := map[netip.Addr]bool{netip.MustParseAddr("10.0.2.11"): true, netip.MustParseAddr("10.0.2.12"): true}
	setUp := func(a string, on bool) {
		mu.Lock()
		defer mu.Unlock()
		up[netip.MustParseAddr(a)] = on
	}
	var scripts []string
	clock := healthcheck.NewFakeClock(time.Unix(1000, 0))
	core, logs := observer.New(zap.InfoLevel)
	k := newKeepalived(cfg, st, zap.New(core), kaOptions{
		Checker: healthcheck.Options{Clock: clock, Rand: func() float64 { return 0 }},
		Prober: func(c *keepalived.Checker) healthcheck.Prober {
			return healthcheck.ProberFunc(func(context.Context, healthcheck.Target) healthcheck.Result {
				mu.Lock()
				defer mu.Unlock()
				return healthcheck.Result{OK: up[c.ConnectIP]}
			})
		},
		Script: func(_ context.Context, s *keepalived.Script) {
			mu.Lock()
			defer mu.Unlock()
			scripts = append(scripts, s.Cmd)
		},
	})
	k.start(context.Background())
	defer k.stop()

	pool := func() string {
		var out []string
		for _, svc := range st.Services() {
			for _, d := range svc.Dests {
				out = append(out, d.AddrPort().String()+"/"+strconv.Itoa(int(d.Weight())))
			}
		}
		return strings.Join(out, " ")
	}
	step := func(what, want string) {
		t.Helper()
		clock.Advance(time.Second)
		clock.Advance(time.Second)
		clock.Advance(time.Second)
		k.scripts.Wait()
		if got := pool(); got != want {
			t.Fatalf("%s: pool %q, want %q", what, got, want)
		}
	}
	step("all up", "10.0.2.12:80/1 10.0.2.11:80/1")
	setUp("10.0.2.11", false)
	step("rs1 down", "10.0.2.12:80/1")
	setUp("10.0.2.12", false)
	step("rs2 down: quorum lost", "10.0.9.9:80/1 10.0.2.12:80/0")
	setUp("10.0.2.11", true)
	step("rs1 up: quorum gained", "10.0.2.11:80/1 10.0.2.12:80/0")
	setUp("10.0.2.12", true)
	step("rs2 up", "10.0.2.11:80/1 10.0.2.12:80/1")

	for _, want := range []string{
		"Gained quorum 1+0=1 <= 2 for VS [10.0.1.100]:tcp:80",
		"Removing service [10.0.2.11]:tcp:80 from VS [10.0.1.100]:tcp:80",
		"Disabling service [10.0.2.12]:tcp:80 of VS [10.0.1.100]:tcp:80",
		"Lost quorum 1-0=1 > 0 for VS [10.0.1.100]:tcp:80",
		"Adding sorry server [10.0.9.9]:tcp:80 to VS [10.0.1.100]:tcp:80",
		"Adding service [10.0.2.11]:tcp:80 to VS [10.0.1.100]:tcp:80",
		"Removing sorry server [10.0.9.9]:tcp:80 from VS [10.0.1.100]:tcp:80",
		"Enabling service [10.0.2.12]:tcp:80 of VS [10.0.1.100]:tcp:80",
	} {
		if logs.FilterMessage(want).Len() != 1 {
			var all []string
			for _, e := range logs.All() {
				all = append(all, e.Message)
			}
			t.Errorf("log lacks %q (or has it more than once):\n%s", want, strings.Join(all, "\n"))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(scripts, ",") != "/usr/local/bin/rs-down 10.0.2.11" {
		t.Errorf("scripts run: %q, want rs1's notify_down once", scripts)
	}
}

// TestKeepalivedScript runs a notify script without a shell: its words
// are the program and its arguments, a shell's syntax is not.
func TestKeepalivedScript(t *testing.T) {
	touch, err := exec.LookPath("touch")
	if err != nil {
		t.Fatalf("no touch(1): %v", err)
	}
	dir := t.TempDir()
	k := &kaRunner{log: zap.NewNop(), ctx: context.Background()}
	k.script(&keepalived.Script{Cmd: touch + " '" + filepath.Join(dir, "a b") + "' " + filepath.Join(dir, "c;d")})
	k.scripts.Wait()
	for _, name := range []string{"a b", "c;d"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("notify script did not create %q: %v", name, err)
		}
	}
}

const kaReloadBefore = `virtual_server 10.0.1.100 80 {
    delay_loop 1
    retry 1
    delay_before_retry 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.2.11 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 10.0.2.12 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
virtual_server 10.0.1.200 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.2.21 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`

// After: 10.0.1.100 gets wrr and persistence, rs1 weight 3, rs2 is
// dropped, rs3 is new and alpha; 10.0.1.200 is gone; 10.0.1.101 is new;
// lvs_timeouts is set.
const kaReloadAfter = `global_defs {
    lvs_timeouts tcp 7200 tcpfin 60 udp 30
}
virtual_server 10.0.1.100 80 {
    delay_loop 1
    retry 1
    delay_before_retry 1
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    persistence_timeout 60
    real_server 10.0.2.11 80 {
        weight 3
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 10.0.2.13 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
            alpha
        }
    }
}
virtual_server 10.0.1.101 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.2.31 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`

// TestKeepalivedReload applies a new configuration to running checkers
// on a fake clock: kept real servers keep their checker (no new probe
// from scratch, no second "success" line), changed parameters become -E
// and -e, removed servers leave the table and their checkers stop, new
// ones follow the start-up rules.
func TestKeepalivedReload(t *testing.T) {
	parse := func(s string) *keepalived.Config {
		t.Helper()
		cfg, diags, err := keepalived.Parse("keepalived.conf", strings.NewReader(s), keepalived.Options{})
		if err != nil || len(diags) > 0 {
			t.Fatalf("parse: %v %v", err, diags)
		}
		return cfg
	}
	before, after := parse(kaReloadBefore), parse(kaReloadAfter)
	st := control.New(control.Options{})
	if err := st.ApplyAll(before.Commands()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	probes := map[netip.Addr]int{}
	clock := healthcheck.NewFakeClock(time.Unix(1000, 0))
	core, logs := observer.New(zap.InfoLevel)
	k := newKeepalived(before, st, zap.New(core), kaOptions{
		Checker: healthcheck.Options{Clock: clock, Rand: func() float64 { return 0 }},
		Prober: func(c *keepalived.Checker) healthcheck.Prober {
			return healthcheck.ProberFunc(func(_ context.Context, tg healthcheck.Target) healthcheck.Result {
				mu.Lock()
				defer mu.Unlock()
				probes[tg.Addr.Addr()]++
				return healthcheck.Result{OK: true}
			})
		},
	})
	k.start(context.Background())
	defer k.stop()
	advance := func() {
		for range 3 {
			clock.Advance(time.Second)
		}
	}
	table := func() string {
		var out []string
		for _, svc := range st.Services() {
			s := svc.Config.Key.String() + " " + svc.Config.Scheduler
			if svc.Config.Persistent {
				s += " p" + strconv.Itoa(int(svc.Config.Timeout))
			}
			for _, d := range svc.Dests {
				s += " " + d.AddrPort().String() + "/" + strconv.Itoa(int(d.Weight()))
			}
			out = append(out, s)
		}
		slices.Sort(out)
		return strings.Join(out, "; ")
	}
	advance()
	rs1 := netip.MustParseAddr("10.0.2.11")
	success := "TCP connection to [10.0.2.11]:tcp:80 success."
	if n := logs.FilterMessage(success).Len(); n != 1 {
		t.Fatalf("before the reload: %d %q lines, want 1", n, success)
	}
	var rs1Checker *healthcheck.Checker
	for _, cv := range k.vss[0].rss[0].hc.Checkers() {
		rs1Checker = cv
	}
	mu.Lock()
	rs1Probes := probes[rs1]
	mu.Unlock()

	k.reload(after)
	want := "TCP  10.0.1.100:80 wrr p60 10.0.2.11:80/3; TCP  10.0.1.101:80 rr 10.0.2.31:80/2"
	if got := table(); got != want {
		t.Fatalf("after the reload:\n got %s\nwant %s", got, want)
	}
	if got, want := st.Timeouts(), (control.Timeouts{TCP: 7200 * time.Second, TCPFin: time.Minute, UDP: 30 * time.Second}); got != want {
		t.Errorf("timeouts after the reload %+v, want %+v", got, want)
	}
	if got := k.vss[0].rss[0].hc.Checkers()[0]; got != rs1Checker {
		t.Error("rs1's checker was replaced")
	}
	if got := rs1Checker.Probes(); got != uint64(rs1Probes) {
		t.Errorf("rs1 probed %d times by the reload itself (had %d)", got, rs1Probes)
	}
	views := k.checkerViews(clock.Now())
	var rows []string
	for _, v := range views {
		rows = append(rows, v.VS+" "+v.RS+" "+strconv.FormatBool(v.Up))
	}
	wantRows := "[10.0.1.100]:tcp:80 [10.0.2.11]:tcp:80 true, [10.0.1.100]:tcp:80 [10.0.2.13]:tcp:80 false, " +
		"[10.0.1.101]:tcp:80 [10.0.2.31]:tcp:80 true"
	if got := strings.Join(rows, ", "); got != wantRows {
		t.Errorf("checker views:\n got %s\nwant %s", got, wantRows)
	}
	if v := views[0]; v.LastMsg != success || v.Next < 0 || v.RetriesLeft != 1 {
		t.Errorf("rs1's view %+v: want its success message, a next run and 1 retry left", v)
	}

	mu.Lock()
	stopped := probes[netip.MustParseAddr("10.0.2.12")] + probes[netip.MustParseAddr("10.0.2.21")]
	mu.Unlock()
	advance()
	want = "TCP  10.0.1.100:80 wrr p60 10.0.2.13:80/1 10.0.2.11:80/3; TCP  10.0.1.101:80 rr 10.0.2.31:80/2"
	if got := table(); got != want {
		t.Fatalf("after the new checkers ran:\n got %s\nwant %s", got, want)
	}
	mu.Lock()
	if n := probes[netip.MustParseAddr("10.0.2.12")] + probes[netip.MustParseAddr("10.0.2.21")]; n != stopped {
		t.Errorf("removed real servers probed %d times after the reload", n-stopped)
	}
	mu.Unlock()
	if n := logs.FilterMessage(success).Len(); n != 1 {
		t.Errorf("%q logged %d times, want once: rs1's checker restarted", success, n)
	}
	for _, m := range []string{"Removing virtual server [10.0.1.200]:tcp:80", "Adding virtual server [10.0.1.101]:tcp:80",
		"Removing service [10.0.2.12]:tcp:80 from VS [10.0.1.100]:tcp:80", "Updating virtual server [10.0.1.100]:tcp:80",
		"Adding service [10.0.2.13]:tcp:80 to VS [10.0.1.100]:tcp:80"} {
		if logs.FilterMessage(m).Len() == 0 {
			t.Errorf("log lacks %q", m)
		}
	}
}

// TestKeepalivedReloadRun hands a reload to a running runner, as SIGHUP
// does, and checks that a stopped runner refuses one.
func TestKeepalivedReloadRun(t *testing.T) {
	parse := func(s string) *keepalived.Config {
		t.Helper()
		cfg, _, err := keepalived.Parse("keepalived.conf", strings.NewReader(s), keepalived.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	before := parse(kaReloadBefore)
	st := control.New(control.Options{})
	if err := st.ApplyAll(before.Commands()); err != nil {
		t.Fatal(err)
	}
	clock := healthcheck.NewFakeClock(time.Unix(1000, 0))
	k := newKeepalived(before, st, zap.NewNop(), kaOptions{
		Checker: healthcheck.Options{Clock: clock, Rand: func() float64 { return 0 }},
		Prober: func(*keepalived.Checker) healthcheck.Prober {
			return healthcheck.ProberFunc(func(context.Context, healthcheck.Target) healthcheck.Result {
				return healthcheck.Result{OK: true}
			})
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		k.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	if !k.Reload(parse(kaReloadAfter)) {
		t.Fatal("a running runner refused the reload")
	}
	if n := len(st.Services()); n != 2 {
		t.Errorf("%d services after the reload, want 2", n)
	}
	if n := len(k.checkerViews(clock.Now())); n != 3 {
		t.Errorf("%d checkers after the reload, want 3", n)
	}
	cancel()
	<-stopped
	if k.Reload(before) {
		t.Error("a stopped runner took a reload")
	}
}

// TestWriteDataFile is SIGUSR1's file without --keepalived: the header.
func TestWriteDataFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "uvsd.data")
	for range 2 { // the second replaces the first
		if err := writeDataFile(&Director{}, file); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "VS ") || strings.Count(string(b), "\n") != 1 {
		t.Errorf("data file %q, want the header only", b)
	}
	if ents, _ := os.ReadDir(filepath.Dir(file)); len(ents) != 1 {
		t.Errorf("%d files left in the directory, want 1", len(ents))
	}
}

// TestKeepalivedReloadToGroup moves an address service into a
// virtual_server_group: the old virtual server's real server leaves the
// service the group keeps, the group's joins it.
func TestKeepalivedReloadToGroup(t *testing.T) {
	parse := func(s string) *keepalived.Config {
		t.Helper()
		cfg, diags, err := keepalived.Parse("keepalived.conf", strings.NewReader(s), keepalived.Options{})
		if err != nil || len(diags) > 0 {
			t.Fatalf("parse: %v %v", err, diags)
		}
		return cfg
	}
	before := parse("virtual_server 10.0.1.200 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n" +
		" real_server 10.0.2.21 80 {\n  TCP_CHECK {\n  }\n }\n}\n")
	after := parse("virtual_server_group G {\n 10.0.1.200 80\n}\n" +
		"virtual_server group G {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n" +
		" real_server 10.0.2.22 80 {\n  TCP_CHECK {\n  }\n }\n}\n")
	st := control.New(control.Options{})
	if err := st.ApplyAll(before.Commands()); err != nil {
		t.Fatal(err)
	}
	clock := healthcheck.NewFakeClock(time.Unix(1000, 0))
	k := newKeepalived(before, st, zap.NewNop(), kaOptions{
		Checker: healthcheck.Options{Clock: clock, Rand: func() float64 { return 0 }},
		Prober: func(*keepalived.Checker) healthcheck.Prober {
			return healthcheck.ProberFunc(func(context.Context, healthcheck.Target) healthcheck.Result {
				return healthcheck.Result{OK: true}
			})
		},
	})
	k.start(context.Background())
	defer k.stop()
	k.reload(after)
	var got []string
	for _, svc := range st.Services() {
		for _, d := range svc.Dests {
			got = append(got, svc.Config.Key.String()+" "+d.AddrPort().String())
		}
	}
	if want := "TCP  10.0.1.200:80 10.0.2.22:80"; strings.Join(got, "; ") != want {
		t.Errorf("table %q, want %q", got, want)
	}
}

const kaMiscDynamicConf = `virtual_server 10.0.1.100 80 {
    delay_loop 1
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    real_server 10.0.2.11 80 {
        weight 5
        MISC_CHECK {
            misc_path "/bin/true"
            misc_dynamic
        }
    }
    real_server 10.0.2.12 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`

// kaPool renders the pool of st as "addr:port/weight …".
func kaPool(st *control.State) string {
	var out []string
	for _, svc := range st.Services() {
		for _, d := range svc.Dests {
			out = append(out, d.AddrPort().String()+"/"+strconv.Itoa(int(d.Weight())))
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// TestKeepalivedMiscDynamic: a misc_dynamic script's exit status sets the
// real server's weight (status − 2, -e), exit 0 gives the configured
// weight back, a failure takes the server out and its next success puts
// it back with the weight that success asks for.
func TestKeepalivedMiscDynamic(t *testing.T) {
	cfg, st := startTable(t, kaMiscDynamicConf)
	var mu sync.Mutex
	status := 0
	clock := healthcheck.NewFakeClock(time.Unix(1000, 0))
	core, logs := observer.New(zap.InfoLevel)
	k := newKeepalived(cfg, st, zap.New(core), kaOptions{
		Checker: healthcheck.Options{Clock: clock, Rand: func() float64 { return 0 }},
		Prober: func(c *keepalived.Checker) healthcheck.Prober {
			if c.Kind != "MISC_CHECK" {
				return healthcheck.ProberFunc(func(context.Context, healthcheck.Target) healthcheck.Result {
					return healthcheck.Result{OK: true}
				})
			}
			m := &healthcheck.MiscCheck{Argv: []string{"/bin/true"}, Dynamic: true}
			return healthcheck.ProberFunc(func(context.Context, healthcheck.Target) healthcheck.Result {
				mu.Lock()
				defer mu.Unlock()
				return m.ResultForStatus(status)
			})
		},
	})
	k.start(context.Background())
	defer k.stop()
	step := func(s int, want string) {
		t.Helper()
		mu.Lock()
		status = s
		mu.Unlock()
		for range 3 {
			clock.Advance(time.Second)
		}
		if got := kaPool(st); got != want {
			t.Fatalf("exit %d: pool %q, want %q", s, got, want)
		}
	}
	step(0, "10.0.2.11:80/5 10.0.2.12:80/1")
	step(12, "10.0.2.11:80/10 10.0.2.12:80/1")
	step(1, "10.0.2.12:80/1")
	step(0, "10.0.2.11:80/5 10.0.2.12:80/1")
	step(255, "10.0.2.11:80/253 10.0.2.12:80/1")
	step(1, "10.0.2.12:80/1")
	step(4, "10.0.2.11:80/2 10.0.2.12:80/1")
	step(0, "10.0.2.11:80/5 10.0.2.12:80/1")
	// A reload keeps the weight the script asked for; exit 0 then gives
	// the new configured weight.
	step(12, "10.0.2.11:80/10 10.0.2.12:80/1")
	nc, diags, err := keepalived.Parse("keepalived.conf", strings.NewReader(strings.Replace(kaMiscDynamicConf, "weight 5", "weight 7", 1)), keepalived.Options{})
	if err != nil || len(diags) > 0 {
		t.Fatalf("parse: %v %v", err, diags)
	}
	k.reload(nc)
	if got, want := kaPool(st), "10.0.2.11:80/10 10.0.2.12:80/1"; got != want {
		t.Fatalf("reload: pool %q, want %q", got, want)
	}
	step(0, "10.0.2.11:80/7 10.0.2.12:80/1")
	for _, want := range []string{
		"Changing weight from 5 to 10 for active service [10.0.2.11]:tcp:80 of VS [10.0.1.100]:tcp:80",
		"Changing weight from 10 to 5 for inactive service [10.0.2.11]:tcp:80 of VS [10.0.1.100]:tcp:80",
		"Changing weight from 2 to 5 for active service [10.0.2.11]:tcp:80 of VS [10.0.1.100]:tcp:80",
		"Changing weight from 10 to 7 for active service [10.0.2.11]:tcp:80 of VS [10.0.1.100]:tcp:80",
	} {
		if logs.FilterMessage(want).Len() == 0 {
			t.Errorf("log lacks %q", want)
		}
	}
}

// TestKeepalivedFileCheck: FILE_CHECK follows its track_file: init_file
// writes the initial value, value × weight is added to the real server's
// weight, IPVS_WEIGHT_FAULT or (weight 0) a non-zero value takes the real
// server out.
func TestKeepalivedFileCheck(t *testing.T) {
	dir := t.TempDir()
	f1, f2 := filepath.Join(dir, "tf1"), filepath.Join(dir, "tf2")
	conf := `track_file TF1 {
    file ` + f1 + `
    weight 1
    init_file 3
}
vrrp_track_file TF2 {
    file ` + f2 + `
}
virtual_server 10.0.1.100 80 {
    delay_loop 10
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    real_server 10.0.2.11 80 {
        weight 5
        FILE_CHECK {
            track_file TF1
            weight 2
        }
    }
    real_server 10.0.2.12 80 {
        weight 1
        FILE_CHECK {
            track_file TF2
        }
    }
}
`
	cfg, st := startTable(t, conf)
	clock := healthcheck.NewFakeClock(time.Unix(1000, 0))
	core, logs := observer.New(zap.InfoLevel)
	k := newKeepalived(cfg, st, zap.New(core), kaOptions{
		Checker: healthcheck.Options{Clock: clock, Rand: func() float64 { return 0 }},
	})
	if b, err := os.ReadFile(f1); err != nil || string(b) != "3\n" {
		t.Fatalf("init_file: %q %v", b, err)
	}
	k.start(context.Background())
	defer k.stop()
	write := func(name, v string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	step := func(what, want string) {
		t.Helper()
		clock.Advance(fileCheckPoll)
		if got := kaPool(st); got != want {
			t.Fatalf("%s: pool %q, want %q", what, got, want)
		}
	}
	step("start: 5 + 3×2, tf2 missing reads 0", "10.0.2.11:80/11 10.0.2.12:80/1")
	write(f1, "-1\n")
	step("tf1 -1", "10.0.2.11:80/3 10.0.2.12:80/1")
	write(f2, "1")
	step("tf2 non-zero: rs2 down", "10.0.2.11:80/3")
	write(f1, "-1073741824")
	step("tf1 -2^30 × 2 = IPVS_WEIGHT_FAULT: rs1 down", "")
	write(f1, "0x10")
	write(f2, "0")
	step("tf1 16, tf2 0", "10.0.2.11:80/37 10.0.2.12:80/1")
	if logs.FilterMessage("Changing weight from 11 to 3 for active service [10.0.2.11]:tcp:80 of VS [10.0.1.100]:tcp:80").Len() != 1 {
		t.Error("no weight change logged")
	}
}

// TestKeepalivedHASuspend: the checkers of an ha_suspend virtual server
// whose address is not the director's do not probe (a failing real
// server stays in the pool) until the address appears; they are
// suspended again when it goes.
func TestKeepalivedHASuspend(t *testing.T) {
	const conf = `virtual_server 10.0.1.100 80 {
    delay_loop 1
    ha_suspend
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.2.11 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
virtual_server 10.0.1.200 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.2.21 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`
	cfg, st := startTable(t, conf)
	var mu sync.Mutex
	local := false
	probes := map[netip.Addr]int{}
	clock := healthcheck.NewFakeClock(time.Unix(1000, 0))
	core, logs := observer.New(zap.InfoLevel)
	k := newKeepalived(cfg, st, zap.New(core), kaOptions{
		Checker: healthcheck.Options{Clock: clock, Rand: func() float64 { return 0 }},
		Prober: func(c *keepalived.Checker) healthcheck.Prober {
			return healthcheck.ProberFunc(func(context.Context, healthcheck.Target) healthcheck.Result {
				mu.Lock()
				defer mu.Unlock()
				probes[c.ConnectIP]++
				return healthcheck.Result{}
			})
		},
		Local: func(a netip.Addr) bool {
			mu.Lock()
			defer mu.Unlock()
			return local && a == netip.MustParseAddr("10.0.1.100")
		},
	})
	k.start(context.Background())
	defer k.stop()
	rs1, rs2 := netip.MustParseAddr("10.0.2.11"), netip.MustParseAddr("10.0.2.21")
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return probes[rs1], probes[rs2]
	}
	for range 5 {
		clock.Advance(time.Second)
	}
	if n1, n2 := count(); n1 != 0 || n2 == 0 {
		t.Fatalf("VIP absent: %d probes of the ha_suspend real server, %d of the other", n1, n2)
	}
	if got := kaPool(st); got != "10.0.2.11:80/1" {
		t.Fatalf("VIP absent: pool %q, want the suspended real server kept", got)
	}
	mu.Lock()
	local = true
	mu.Unlock()
	for range 5 {
		clock.Advance(time.Second)
	}
	if n1, _ := count(); n1 == 0 {
		t.Fatal("VIP present: the checker did not probe")
	}
	if got := kaPool(st); got != "" {
		t.Fatalf("VIP present: pool %q, want the failing real server removed", got)
	}
	mu.Lock()
	local = false
	mu.Unlock()
	for range 3 {
		clock.Advance(time.Second)
	}
	n1, _ := count()
	for range 5 {
		clock.Advance(time.Second)
	}
	if m1, _ := count(); m1 != n1 {
		t.Fatalf("VIP gone again: %d more probes", m1-n1)
	}
	for _, want := range []string{
		"Suspending healthchecker for service [10.0.2.11]:tcp:80 for VS [10.0.1.100]:tcp:80",
		"Activating healthchecker for service [10.0.2.11]:tcp:80 for VS [10.0.1.100]:tcp:80",
	} {
		if logs.FilterMessage(want).Len() != 2-strings.Count(want, "Activating") {
			t.Errorf("log: %q %d times", want, logs.FilterMessage(want).Len())
		}
	}
}

// TestKeepalivedScriptUser runs notify scripts as their user: the one
// named after the script, else global_defs' script_user.
func TestKeepalivedScriptUser(t *testing.T) {
	netnstest.SkipIfNotRoot(t) // running a script as another user needs root
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("no user nobody: %v", err)
	}
	dir := t.TempDir()
	// nobody must be able to reach the script and write its output.
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(dir, "id.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nid -u > \"$1\"\nid -g >> \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, diags, err := keepalived.Parse("keepalived.conf", strings.NewReader("global_defs {\n script_user nobody\n}\n"), keepalived.Options{})
	if err != nil || len(diags) > 0 || cfg.Global.ScriptUser != "nobody" || cfg.Global.ScriptGroup != "" {
		t.Fatalf("parse: %v %v %+v", err, diags, cfg.Global)
	}
	gid := u.Gid
	if g, err := user.LookupGroup("root"); err == nil {
		gid = g.Gid
	}
	k := &kaRunner{log: zap.NewNop(), ctx: context.Background(), cfg: cfg}
	for _, c := range []struct {
		name string
		s    keepalived.Script
		want string
	}{
		{"own user", keepalived.Script{User: "nobody"}, u.Uid + "\n" + u.Gid + "\n"},
		{"own user and group", keepalived.Script{User: "nobody", Group: "root"}, u.Uid + "\n" + gid + "\n"},
		{"script_user", keepalived.Script{}, u.Uid + "\n" + u.Gid + "\n"},
	} {
		out := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
		s := c.s
		s.Cmd = script + " " + out
		k.script(&s)
		k.scripts.Wait()
		if b, err := os.ReadFile(out); err != nil || string(b) != c.want {
			t.Errorf("%s: output %q %v, want %q", c.name, b, err, c.want)
		}
	}
}

// TestKeepalivedMiscUser: a MISC_CHECK runs as its own user, else as
// script_user.
func TestKeepalivedMiscUser(t *testing.T) {
	const conf = `global_defs {
    script_user nobody nogroup
}
virtual_server 10.0.1.100 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.2.11 80 {
        MISC_CHECK {
            misc_path "/bin/true"
        }
        MISC_CHECK {
            misc_path "/bin/true"
            user daemon adm
        }
    }
}
`
	cfg, diags, err := keepalived.Parse("keepalived.conf", strings.NewReader(conf), keepalived.Options{})
	if err != nil || len(diags) > 0 {
		t.Fatalf("parse: %v %v", err, diags)
	}
	k := &kaRunner{log: zap.NewNop(), cfg: cfg}
	rs := cfg.VirtualServers[0].RealServers[0]
	for i, want := range [][2]string{{"nobody", "nogroup"}, {"daemon", "adm"}} {
		p, err := k.prober(healthcheck.KindMisc, rs, rs.Checkers[i])
		if err != nil {
			t.Fatal(err)
		}
		if m := p.(*healthcheck.MiscCheck); m.User != want[0] || m.Group != want[1] {
			t.Errorf("checker %d runs as %q %q, want %q", i, m.User, m.Group, want)
		}
	}
}

// startTable parses a keepalived.conf that must load without a message
// and applies its start-up table to a fresh control State.
func startTable(t *testing.T, conf string) (*keepalived.Config, *control.State) {
	t.Helper()
	cfg, diags, err := keepalived.Parse("keepalived.conf", strings.NewReader(conf), keepalived.Options{})
	if err != nil || len(diags) > 0 {
		t.Fatalf("parse: %v %v", err, diags)
	}
	st := control.New(control.Options{})
	if err := st.ApplyAll(cfg.Commands()); err != nil {
		t.Fatal(err)
	}
	return cfg, st
}
