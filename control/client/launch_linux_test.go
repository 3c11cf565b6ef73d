package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExecLauncher(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "uvsd")
	// The fake uvsd reports its session id and environment, then fails.
	body := "#!/bin/sh\necho \"sid=$(cut -d' ' -f6 /proc/$$/stat) self=$$ sock=$UVS_CONTROL_SOCKET\"\nexit 3\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	l := &ExecLauncher{Path: script, Dir: dir, netns: netnsID(), Env: []string{"UVS_CONTROL_SOCKET=@x"}}
	unlock, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	exited, err := l.Launch()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), l.LogPath()) {
			t.Errorf("exit report: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fake uvsd did not exit")
	}
	unlock()
	log, err := os.ReadFile(l.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	var sid, self, sock string
	for _, f := range strings.Fields(string(log)) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "sid":
			sid = v
		case "self":
			self = v
		case "sock":
			sock = v
		}
	}
	// setsid: the child leads its own session.
	if sid == "" || sid != self || sock != "@x" {
		t.Errorf("child log %q: want its own session and the socket override", log)
	}
	if !strings.HasPrefix(filepath.Base(l.LogPath()), "uvsd-net") {
		t.Errorf("log name %s does not name the namespace", l.LogPath())
	}
	// The lock can be taken again once released.
	unlock, err = l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}
