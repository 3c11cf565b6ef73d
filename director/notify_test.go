package director

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listenNotify listens on a unix datagram socket as systemd does for
// $NOTIFY_SOCKET.
func listenNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readNotify(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(b[:n])
}

func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	abstract := "@uvs-test-notify-" + strings.ReplaceAll(t.Name(), "/", "-") + time.Now().Format("150405.000000000")
	for _, name := range []string{path, abstract} {
		c := listenNotify(t, name)
		if err := notify(name, "READY=1\nSTATUS=serving"); err != nil {
			t.Fatalf("notify %s: %v", name, err)
		}
		if got := readNotify(t, c); got != "READY=1\nSTATUS=serving" {
			t.Errorf("%s received %q", name, got)
		}
	}
	// Not under systemd: nothing to do, no error.
	if err := notify("", "READY=1"); err != nil {
		t.Errorf("empty $NOTIFY_SOCKET: %v", err)
	}
	// A name that is neither a path nor abstract, or nobody listening.
	for _, name := range []string{"relative/sock", filepath.Join(t.TempDir(), "nobody")} {
		if err := notify(name, "READY=1"); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("notify %q: %v, want an error naming it", name, err)
		}
	}
}
