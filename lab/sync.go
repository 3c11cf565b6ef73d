package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The sync scenario: seed 000's sersync section. The director's web root
// is copied by uvs-sync (sersync2 -dro confxml.xml) to the rsync daemons
// of the two real servers (rsyncd.conf as the seed writes it), whose web
// servers serve it through the VIP.

// syncScenario is registered in scenarios.go's table.
var syncScenario = &Scenario{
	Name: "sync", Seed: "000 (sersync实现实时数据同步), 000 (LVS-DR)", Mode: "DR (-g), uvs-sync", Sched: "rr",
	Title: "sersync: the director's web root copied to every real server by uvs-sync and rsync",
	Summary: "Seed 000 opens with sersync: inotify events on the web root, coalesced and filtered, sent with rsync " +
		"to the other servers' rsync daemons, a failure queue for a server that is down. Here uvs-sync reads the " +
		"seed's confxml.xml on the director (uvs-sync -dro confxml.xml) and each real server runs rsync --daemon with " +
		"the seed's rsyncd.conf; their web servers serve the copy through the VIP. The run edits a page and times it " +
		"until both real servers serve it, stops rs2's rsyncd (its change waits in the failure queue, rs2 serves the " +
		"old page) and starts it again, then writes 1000 files at once and counts the rsync runs.",
	Diagram: `
  client 192.168.10.6 ─── [router] ─── [switch] ─┬─ director 10.0.0.8  uvsd; uvs-sync -dro confxml.xml  (web root www/)
     gw 192.168.10.200    .10.200 | 10.0.0.200   ├─ rs1 10.0.0.7   rsync --daemon [www] -> rs1-www/  web :80 serves it
                                                 └─ rs2 10.0.0.17  rsync --daemon [www] -> rs2-www/  web :80 serves it
  VIP 10.0.0.100:80`,
	build: buildSync,
	run:   runSync,
}

// syncDir is the instance's state directory, where the scenario keeps
// the director's web root, the real servers' copies and the files it
// writes (the plan needs their paths inside confxml.xml).
func syncDir(o *Options) string {
	sd, pf := DefaultStateDir, DefaultPrefix
	if o != nil {
		if o.StateDir != "" {
			sd = o.StateDir
		}
		if o.Prefix != "" {
			pf = o.Prefix
		}
	}
	return filepath.Join(sd, pf, "sync")
}

// The scenario's uvs-sync timers: batches gathered for 100 ms, failed
// syncs retried after 200 ms doubling to 1 s (the seed's failLog retries
// every 60 minutes; the lab is in a hurry).
const (
	syncWindow    = "100ms"
	syncRetryBase = "200ms"
	syncRetryMax  = "1s"
	syncBurst     = 1000
	syncBound     = 20 * time.Second // how long the run waits for anything (it reports, it does not time)
)

// seedRsyncdConf is seed 000's /etc/rsyncd.conf with a [www] module at
// path, its pid, lock and log files and the secrets file under dir.
func seedRsyncdConf(dir, name, path string) string {
	return fmt.Sprintf(`uid = root
gid = root
ignore errors
exclude = lost+found/
log file = %[1]s/rsyncd-%[2]s.log
pid file = %[1]s/rsyncd-%[2]s.pid
lock file = %[1]s/rsyncd-%[2]s.lock
reverse lookup = no
# hosts allow = 10.0.0.0/24
[www]
path = %[3]s/
comment = web root
read only = no
auth users = rsyncuser
secrets file = %[1]s/rsync-%[2]s.secrets
`, dir, name, path)
}

// seedConfXML is seed 000's confxml.xml: attrib on, the web root watched,
// both real servers' [www] module, auth with rsyncuser and the password
// file, daemon mode.
func seedConfXML(dir string, servers []realServer) string {
	var c strings.Builder
	c.WriteString(`<?xml version="1.0" encoding="ISO-8859-1"?>
<head version="2.5">
    <host hostip="localhost" port="8008"></host>
    <debug start="false"/>
    <fileSystem xfs="false"/>
    <filter start="false">
        <exclude expression="(.*)\.svn"></exclude>
    </filter>
    <inotify>
        <delete start="true"/>
        <createFolder start="true"/>
        <createFile start="false"/>
        <closeWrite start="true"/>
        <moveFrom start="true"/>
        <moveTo start="true"/>
        <attrib start="true"/>
        <modify start="false"/>
    </inotify>
    <sersync>
`)
	fmt.Fprintf(&c, "        <localpath watch=%q>\n", filepath.Join(dir, "www"))
	for _, rs := range servers {
		fmt.Fprintf(&c, "            <remote ip=%q name=\"www\"/>\n", rs.Addr)
	}
	c.WriteString("        </localpath>\n        <rsync>\n            <commonParams params=\"-artuz\"/>\n")
	fmt.Fprintf(&c, "            <auth start=\"true\" users=\"rsyncuser\" passwordfile=%q/>\n", filepath.Join(dir, "rsync.pas"))
	c.WriteString(`            <userDefinedPort start="false" port="874"/>
            <timeout start="false" time="100"/>
            <ssh start="false"/>
        </rsync>
`)
	fmt.Fprintf(&c, "        <failLog path=%q timeToExecute=\"60\"/>\n", filepath.Join(dir, "rsync_fail_log.sh"))
	c.WriteString(`        <crontab start="false" schedule="600">
            <crontabfilter start="false">
                <exclude expression="*.php"></exclude>
            </crontabfilter>
        </crontab>
        <plugin start="false" name="command"/>
    </sersync>
</head>
`)
	return c.String()
}

func buildSync(b *builder) {
	buildDR(b, drVIP, false)
	dir := syncDir(b.opts)
	// The real servers' web servers serve their copy of the web root.
	for i, st := range b.steps {
		for _, rs := range b.servers {
			if st.kind == stepDaemon && st.name == "httpd "+rs.Name {
				b.steps[i].argv = append(slices.Clone(st.argv), "--root", filepath.Join(dir, rs.Name+"-www"))
			}
		}
	}
	b.note("seed 000 (备份服务器的配置): each real server runs the rsync daemon with a [www] module, its secrets file chmod 600")
	for _, rs := range b.servers {
		b.cmd(rs.Role, false, "mkdir", "-p", filepath.Join(dir, rs.Name+"-www"))
		b.steps = append(b.steps,
			step{kind: stepFile, role: rs.Role, show: rs.Name == b.servers[0].Name, argv: []string{"@dir/rsyncd-" + rs.Name + ".conf",
				seedRsyncdConf(dir, rs.Name, filepath.Join(dir, rs.Name+"-www"))}},
			step{kind: stepFile, role: rs.Role, argv: []string{"@dir/rsync-" + rs.Name + ".secrets", "rsyncuser:xier\n"}})
		b.cmd(rs.Role, true, "chmod", "600", "@dir/rsync-"+rs.Name+".secrets")
		b.steps = append(b.steps, step{kind: stepDaemon, role: rs.Role, show: true, name: "rsyncd " + rs.Name,
			argv: []string{"rsync", "--daemon", "--no-detach", "--config", "@dir/rsyncd-" + rs.Name + ".conf"}, ready: readyTCP, port: 873})
	}
	b.note("seed 000 (sersync): the director's web root, the password file (chmod 600) and confxml.xml; "+
		"uvs-sync -dro stays in the foreground (-d is accepted), -r syncs the whole tree first; the lab retries failures after %s doubling to %s", syncRetryBase, syncRetryMax)
	b.cmd(b.director, false, "mkdir", "-p", filepath.Join(dir, "www"))
	b.steps = append(b.steps,
		step{kind: stepFile, role: b.director, argv: []string{"@dir/rsync.pas", "xier\n"}})
	b.cmd(b.director, true, "chmod", "600", "@dir/rsync.pas")
	b.steps = append(b.steps,
		step{kind: stepFile, role: b.director, show: true, argv: []string{"@dir/confxml.xml", seedConfXML(dir, b.servers)}},
		step{kind: stepDaemon, role: b.director, show: true, name: "uvs-sync",
			argv: []string{"uvs-sync", "-dro", "@dir/confxml.xml", "--state-dir", "@dir/uvs-sync-state",
				"--window", syncWindow, "--retry-base", syncRetryBase, "--retry-max", syncRetryMax},
			started: func(ctx context.Context, s *session, p Proc) error {
				return waitFor(ctx, syncBound, func() (bool, error) {
					if !p.Alive() {
						return false, fmt.Errorf("uvs-sync exited: %s", logTail(p.Log))
					}
					b, _ := os.ReadFile(p.Log)
					return strings.Contains(string(b), "watching "), nil
				}, "uvs-sync watching the web root")
			}})
	b.requests = []Request{{Src: b.clients[0], URL: "http://" + drVIP + "/"}}
}

// waitFor polls cond every 10 ms until it holds, fails, or timeout.
func waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error), what string) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// SyncReport is what the sync scenario measured.
type SyncReport struct {
	// OnDisk and Served are, per real server, the time from the page's
	// write on the director to the new page in its copy, and to its web
	// server answering it through the VIP.
	OnDisk, Served map[string]time.Duration
	// Outage: what rs2 answered while its rsyncd was down (the old
	// page), the failure queue as uvs-sync kept it, and the time from
	// its rsyncd starting again to its copy having the page.
	StaleAnswers []string
	Queue        string
	CatchUp      time.Duration
	// Burst: rsync runs per real server for syncBurst new files, and the
	// time until both had them all.
	BurstRuns map[string]int
	BurstTook time.Duration
}

// syncRuns counts uvs-sync's log lines of rsync runs to the rsync daemon
// at addr that succeeded.
func syncRuns(log string, addr netip.Addr) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "\tsync ") && strings.Contains(l, " to rsync://rsyncuser@"+addr.String()+"/www/ in ") && strings.Contains(l, ": ok") {
			n++
		}
	}
	return n
}

func runSync(ctx context.Context, s *session, _ int) error {
	rep := &SyncReport{OnDisk: map[string]time.Duration{}, Served: map[string]time.Duration{}, BurstRuns: map[string]int{}}
	s.sync = rep
	root := filepath.Join(s.dir, "www")
	copyOf := func(rs realServer, rel string) string { return filepath.Join(s.dir, rs.Name+"-www", rel) }
	ui := s.procIndex("uvs-sync")
	if ui < 0 {
		return errors.New("sync: uvs-sync is not recorded in the state")
	}
	logPath := s.st.Procs[ui].Log
	readLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	page := s.pl.requests[0]
	write := func(content string) (time.Time, error) {
		fmt.Fprintf(s.out, "[director]# echo '%s' > %s\n", content, filepath.Join(root, "index.html"))
		t0 := time.Now()
		return t0, os.WriteFile(filepath.Join(root, "index.html"), []byte(content+"\n"), 0o644)
	}
	has := func(rs realServer, rel, content string) bool {
		b, err := os.ReadFile(copyOf(rs, rel))
		return err == nil && strings.TrimSpace(string(b)) == content
	}

	// uvs-sync -r first copies the whole tree: let it finish, so that the
	// edit is timed on its own.
	if err := waitFor(ctx, syncBound, func() (bool, error) {
		for _, rs := range s.pl.servers {
			if syncRuns(readLog(), rs.Addr) == 0 {
				return false, nil
			}
		}
		return true, nil
	}, "uvs-sync -r's first full sync"); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "\n== 1. the page is edited on the director: uvs-sync sends it to both rsync daemons, both web servers serve it\n")
	logFrom := len(readLog())
	v1 := "<h1>uvs " + time.Now().Format("15:04:05.000") + "</h1>"
	t0, err := write(v1)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, syncBound, func() (bool, error) {
		for _, rs := range s.pl.servers {
			if _, ok := rep.OnDisk[rs.Name]; !ok && has(rs, "index.html", v1) {
				rep.OnDisk[rs.Name] = time.Since(t0)
			}
		}
		return len(rep.OnDisk) == len(s.pl.servers), nil
	}, "the page in both real servers' copies"); err != nil {
		return err
	}
	// Through the VIP, one request at a time (rr alternates), until each
	// real server has answered the new page.
	var last Result
	for try := 0; len(rep.Served) < len(s.pl.servers); try++ {
		if try > 200 {
			return fmt.Errorf("the new page was not served by every real server through the VIP: %v (last answer %q, error %v)",
				rep.Served, last.Answer, last.Err)
		}
		rs, err := s.send(ctx, "edited", []Request{page}, sendOpts{quiet: true})
		if err != nil {
			return err
		}
		r := rs[0]
		last = r
		if r.OK() && r.Answer == v1 && r.Decided && r.Real.IsValid() {
			if name := s.serverName(r.Real.Addr()); rep.Served[name] == 0 {
				rep.Served[name] = time.Since(t0)
			}
		}
	}
	for _, rs := range s.pl.servers {
		fmt.Fprintf(s.out, "  %s: in its copy after %v, served through the VIP after %v\n", rs.Name,
			rep.OnDisk[rs.Name].Round(time.Millisecond), rep.Served[rs.Name].Round(time.Millisecond))
	}
	// uvs-sync logs a run when rsync has exited, a moment after the
	// files landed.
	if err := waitFor(ctx, syncBound, func() (bool, error) {
		for _, rs := range s.pl.servers {
			if syncRuns(readLog()[logFrom:], rs.Addr) == 0 {
				return false, nil
			}
		}
		return true, nil
	}, "uvs-sync's log lines of the runs"); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "uvs-sync's log (one line per rsync run: what, to whom, how long, result):\n")
	for _, l := range strings.Split(readLog(), "\n") {
		if strings.Contains(l, "\tsync ") || strings.Contains(l, "watching") {
			fmt.Fprintf(s.out, "    %s\n", l)
		}
	}
	if _, err := s.send(ctx, "edited", []Request{page, page}, sendOpts{}); err != nil {
		return err
	}

	fmt.Fprintf(s.out, "== 2. rs2's rsyncd stops ([rs2]# systemctl stop rsyncd): the change waits in uvs-sync's failure queue\n")
	rs2 := s.pl.servers[1]
	di := s.procIndex("rsyncd " + rs2.Name)
	if di < 0 {
		return fmt.Errorf("sync: rsyncd %s is not recorded in the state", rs2.Name)
	}
	d := s.st.Procs[di]
	fmt.Fprintf(s.out, "[%s]# kill %d    # rsync --daemon\n", rs2.Role, d.PID)
	if err := d.Stop(3 * time.Second); err != nil {
		return err
	}
	s.st.Procs = slices.Delete(s.st.Procs, di, di+1)
	if err := s.l.saveState(s.st); err != nil {
		return err
	}
	v2 := "<h1>uvs " + time.Now().Format("15:04:05.000") + " (rs2 down)</h1>"
	if _, err := write(v2); err != nil {
		return err
	}
	queuePath := filepath.Join(s.dir, "uvs-sync-state", "fail-queue.json")
	if err := waitFor(ctx, syncBound, func() (bool, error) {
		b, _ := os.ReadFile(queuePath)
		rep.Queue = string(b)
		return has(s.pl.servers[0], "index.html", v2) && strings.Contains(rep.Queue, "rsync://rsyncuser@"+rs2.Addr.String()+"/www/") &&
			strings.Contains(rep.Queue, `"index.html"`), nil
	}, "rs1 with the new page and rs2's change in the failure queue"); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "[director]# cat %s\n%s", queuePath, rep.Queue)
	stale, err := s.send(ctx, "rs2 down", []Request{page, page, page, page}, sendOpts{})
	if err != nil {
		return err
	}
	for _, r := range stale {
		if r.Decided && r.Real.IsValid() && r.Real.Addr() == rs2.Addr && r.OK() {
			rep.StaleAnswers = append(rep.StaleAnswers, r.Answer)
		}
	}
	fmt.Fprintf(s.out, "rs2 still serves the old page: the pool is only right when every real server has the same files\n")

	fmt.Fprintf(s.out, "== 3. rs2's rsyncd comes back: the failure queue is retried and rs2 catches up\n")
	i := slices.IndexFunc(s.pl.steps, func(st step) bool { return st.kind == stepDaemon && st.name == "rsyncd "+rs2.Name })
	if i < 0 {
		return fmt.Errorf("sync: no rsyncd step for %s", rs2.Name)
	}
	_ = os.Remove(filepath.Join(s.dir, "rsyncd-"+rs2.Name+".pid"))
	if _, err := s.run(ctx, s.pl.steps[i]); err != nil {
		return err
	}
	back := time.Now()
	if err := waitFor(ctx, syncBound, func() (bool, error) { return has(rs2, "index.html", v2), nil }, "rs2 caught up"); err != nil {
		return err
	}
	rep.CatchUp = time.Since(back)
	fmt.Fprintf(s.out, "  rs2 caught up %v after its rsyncd started (retry backoff %s doubling to %s)\n", rep.CatchUp.Round(time.Millisecond), syncRetryBase, syncRetryMax)
	if _, err := s.send(ctx, "rs2 back", []Request{page, page}, sendOpts{}); err != nil {
		return err
	}

	fmt.Fprintf(s.out, "== 4. %d files written at once into www/burst/: a handful of rsync runs, not %d\n", syncBurst, syncBurst)
	before := map[string]int{}
	for _, rs := range s.pl.servers {
		before[rs.Name] = syncRuns(readLog(), rs.Addr)
	}
	fmt.Fprintf(s.out, "[director]# mkdir www/burst; for i in $(seq 0 %d); do echo $i > www/burst/p$i.html; done\n", syncBurst-1)
	t0 = time.Now()
	if err := os.Mkdir(filepath.Join(root, "burst"), 0o755); err != nil {
		return err
	}
	for i := range syncBurst {
		if err := os.WriteFile(filepath.Join(root, "burst", fmt.Sprintf("p%d.html", i)), []byte(fmt.Sprintln(i)), 0o644); err != nil {
			return err
		}
	}
	lastFile := fmt.Sprintf("p%d.html", syncBurst-1)
	if err := waitFor(ctx, syncBound, func() (bool, error) {
		for _, rs := range s.pl.servers {
			ents, err := os.ReadDir(copyOf(rs, "burst"))
			if err != nil || len(ents) != syncBurst || !has(rs, filepath.Join("burst", lastFile), fmt.Sprint(syncBurst-1)) {
				return false, nil
			}
		}
		return true, nil
	}, "the burst on both real servers"); err != nil {
		return err
	}
	rep.BurstTook = time.Since(t0)
	// The log line of the last run may follow the files by a moment.
	time.Sleep(100 * time.Millisecond)
	for _, rs := range s.pl.servers {
		rep.BurstRuns[rs.Name] = syncRuns(readLog(), rs.Addr) - before[rs.Name]
	}

	fmt.Fprintf(s.out, "== what it cost\n")
	for _, rs := range s.pl.servers {
		fmt.Fprintf(s.out, "  %s: write -> in its copy %v, -> served through the VIP %v; %d changes -> %d rsync runs\n", rs.Name,
			rep.OnDisk[rs.Name].Round(time.Millisecond), rep.Served[rs.Name].Round(time.Millisecond), syncBurst, rep.BurstRuns[rs.Name])
	}
	fmt.Fprintf(s.out, "  rs2's rsyncd back -> caught up from the failure queue: %v; the burst on both: %v\n\n",
		rep.CatchUp.Round(time.Millisecond), rep.BurstTook.Round(time.Millisecond))
	return nil
}
