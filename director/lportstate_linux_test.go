package director

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/dataplane/khook"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// TestLportsContinueAfterRestart runs uvsd (one worker) with a FULLNAT
// service in a namespace, makes connections whose local ports the real
// server sees, stops uvsd (SIGTERM), starts another and makes one more:
// its local port is one the first uvsd saved as a cursor position, a
// block at most past the last port it used, and none it used. Then the
// same after SIGKILL (the periodic save). With a random start the new
// port lands anywhere in the range's 31 744 ports.
func TestLportsContinueAfterRestart(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	uvsd := buildUVSD(t)
	cli, dir, rs := netnstest.New(t, "lpcli"), netnstest.New(t, "lpdir"), netnstest.New(t, "lprs")
	netnstest.Veth(t, cli, "c0", dir, "d0")
	netnstest.Veth(t, dir, "d1", rs, "r0")
	cli.AddrAdd(t, "c0", "10.9.2.2/24")
	dir.AddrAdd(t, "d0", "10.9.2.1/24")
	dir.AddrAdd(t, "d1", "10.9.3.1/24")
	rs.AddrAdd(t, "r0", "10.9.3.2/24")
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("-A -t 10.9.2.100:9000 -s rr\n-a -t 10.9.2.100:9000 -r 10.9.3.2:9000 -b -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var state string
	if err := dir.Do(func() (err error) { state, _, err = lportStateFile(); return err }); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(state)
	t.Cleanup(func() { _ = os.Remove(state) })

	// The real server closes each connection at once (it closes first,
	// as under Connection: close) and reports the local port it saw.
	var ln net.Listener
	if err := rs.Do(func() (err error) { ln, err = net.Listen("tcp", "10.9.3.2:9000"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	lports := make(chan uint16, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ra := c.RemoteAddr().(*net.TCPAddr)
			c.Close()
			if ra.IP.Equal(net.IPv4(10, 9, 3, 1)) {
				lports <- uint16(ra.Port)
			}
		}
	}()
	connect := func() uint16 {
		t.Helper()
		err := cli.Do(func() error {
			c, err := net.DialTimeout("tcp", "10.9.2.100:9000", 10*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatalf("connecting through uvsd: %v", err)
		}
		select {
		case p := <-lports:
			return p
		case <-time.After(10 * time.Second):
			t.Fatal("the real server saw no connection from 10.9.3.1")
		}
		return 0
	}
	start := func() *netnstest.Proc {
		t.Helper()
		p := dir.Start(t, uvsd, "--rules", rules, "--control", "", "--iface", "d0,d1", "--io", "afpacket",
			"--workers", "1", "--rx-threads=false")
		waitOutput(t, p, "serving")
		return p
	}
	stop := func(p *netnstest.Proc, sig syscall.Signal) {
		t.Helper()
		if err := p.Cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("uvsd did not exit after %v:\n%s", sig, p.Output())
		}
	}
	// check: the successor's first port continues the predecessor's.
	check := func(how string, used []uint16, next uint16, s lportState) {
		t.Helper()
		span := int(s.Pos.Max-s.Pos.Min) + 1
		at := false
		for _, n := range s.Pos.Next {
			at = at || int(next) == int(s.Pos.Min)+int(n)
		}
		last := used[len(used)-1]
		past := (int(next) - int(last) + span) % span
		for _, u := range used {
			if u == next {
				t.Fatalf("after %s: the new uvsd's first local port %d was used by the previous one (%v)", how, next, used)
			}
		}
		if !at || past > 2*64 {
			t.Fatalf("after %s: the new uvsd's first local port %d is not where the previous one left off (last port %d, %d past it; at a saved position: %v)",
				how, next, last, past, at)
		}
	}

	p := start()
	var used []uint16
	for range 5 {
		used = append(used, connect())
	}
	stop(p, syscall.SIGTERM)
	saved, err := readLportState(state)
	if err != nil {
		t.Fatalf("state after SIGTERM: %v\n%s", err, p.Output())
	}
	if !saved.Clean {
		t.Error("the state written at SIGTERM is not marked clean")
	}
	p = start()
	next := connect()
	check("SIGTERM", used, next, saved)

	// A crash: what housekeeping saved (every 2 s while the positions
	// move) is continued.
	used = []uint16{next}
	for range 4 {
		used = append(used, connect())
	}
	clean := saved
	wait.For(t, 15*time.Second, func() bool {
		s, err := readLportState(state)
		return err == nil && !s.Clean && s.Pos != clean.Pos
	}, "a periodic save of the moved positions in %s", state)
	saved, err = readLportState(state)
	if err != nil {
		t.Fatal(err)
	}
	stop(p, syscall.SIGKILL)
	p = start()
	next = connect()
	// The successor of a crash starts past the save by the movement
	// before it: up to one more block.
	crashed := saved
	for i := range crashed.Pos.Next {
		crashed.Pos.Next[i] = (crashed.Pos.Next[i] + crashed.Ahead[i]) % (uint32(saved.Pos.Max-saved.Pos.Min) + 1)
	}
	check("SIGKILL", used, next, crashed)
	stop(p, syscall.SIGTERM)
	t.Logf("range %d-%d, after the restart: ports %v, after the crash: %d", saved.Pos.Min, saved.Pos.Max, used, next)
}

// TestLportStateFileNamesCookie: the state file of a network namespace
// is named by its inode number and its cookie, and two namespaces' files
// differ.
func TestLportStateFileNamesCookie(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	a, b := netnstest.New(t, "lpcka"), netnstest.New(t, "lpckb")
	name := func(ns *netnstest.NS) string {
		t.Helper()
		var path, want string
		err := ns.Do(func() error {
			var st syscall.Stat_t
			if err := syscall.Stat("/proc/thread-self/ns/net", &st); err != nil {
				return err
			}
			cookie, err := khook.NetNSCookie()
			if err != nil {
				return err
			}
			want = fmt.Sprintf("lports-%d-%d", st.Ino, cookie)
			path, _, err = lportStateFile()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if path != filepath.Join(khook.DefaultStateDir, want) {
			t.Fatalf("state file %s, want %s in %s", path, want, khook.DefaultStateDir)
		}
		return path
	}
	if pa, pb := name(a), name(b); pa == pb {
		t.Fatalf("two namespaces share the state file %s", pa)
	}
}
