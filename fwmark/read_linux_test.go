package fwmark

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// netnsRunner runs commands inside the named network namespace.
func netnsRunner(ns string) Runner {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...).Output()
	}
}

func newNetns(t *testing.T) string {
	t.Helper()
	netnstest.SkipIfNotRoot(t)
	for _, tool := range []string{"ip", "iptables", "iptables-save", "ip6tables", "ip6tables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: %v", tool, err)
		}
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	ns := "uvs-t-fw-" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	return ns
}

func TestReadNetns(t *testing.T) {
	ns := newNetns(t)
	run := netnsRunner(ns)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	empty, err := Read(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	c, unsup, err := Parse(empty, map[string]int{"lo": 1})
	if err != nil || len(unsup) != 0 {
		t.Fatalf("empty namespace: unsupported %v err %v", unsup, err)
	}
	if n4, n6 := c.Len(); n4+n6 != 0 {
		t.Fatalf("empty namespace: %d+%d rules", n4, n6)
	}

	// The seed-001 recipe plus rules that exercise the save format.
	for _, args := range [][]string{
		{"iptables", "-t", "mangle", "-A", "PREROUTING", "-d", "10.0.0.100", "-p", "tcp", "-m", "multiport", "--dports", "80,443", "-j", "MARK", "--set-mark", "10"},
		{"iptables", "-t", "mangle", "-A", "PREROUTING", "-s", "192.168.0.0/16", "!", "-d", "10.0.0.0/8", "-p", "udp", "--dport", "53:60", "-j", "MARK", "--set-mark", "0x5/0xff"},
		{"iptables", "-t", "mangle", "-A", "PREROUTING", "!", "-i", "lo", "-p", "132", "-m", "comment", "--comment", `say "hi"`, "-j", "MARK", "--or-mark", "0x100"},
		{"iptables", "-t", "mangle", "-A", "PREROUTING", "-m", "state", "--state", "NEW", "-j", "CONNMARK", "--save-mark"},
		{"ip6tables", "-t", "mangle", "-A", "PREROUTING", "-d", "2001:db8::1", "-p", "tcp", "--dport", "80", "-j", "MARK", "--set-mark", "7"},
	} {
		if out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	tables, err := Read(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if tables == empty {
		t.Fatal("Read returned the same tables after adding rules")
	}
	c, unsup, err = Parse(tables, map[string]int{"lo": 1, "veth0": 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(unsup) != 1 || unsup[0].IPv6 || unsup[0].Line < 1 {
		t.Fatalf("unsupported = %v, want the CONNMARK rule", unsup)
	}
	if n4, n6 := c.Len(); n4 != 3 || n6 != 1 {
		t.Fatalf("Len = %d, %d; want 3, 1", n4, n6)
	}
	tests := []struct {
		p    Packet
		want uint32
	}{
		{Packet{Src: v4("203.0.113.9"), Dst: v4("10.0.0.100"), Proto: 6, SrcPort: 40000, DstPort: 443, Ifindex: 2}, 10},
		{Packet{Src: v4("203.0.113.9"), Dst: v4("10.0.0.100"), Proto: 6, SrcPort: 40000, DstPort: 22, Ifindex: 2}, 0},
		{Packet{Src: v4("192.168.3.4"), Dst: v4("8.8.8.8"), Proto: 17, SrcPort: 5, DstPort: 55, Ifindex: 2}, 5},
		{Packet{Src: v4("192.168.3.4"), Dst: v4("8.8.8.8"), Proto: 132, SrcPort: 5, DstPort: 55, Ifindex: 2}, 0x100},
		{Packet{Src: v4("192.168.3.4"), Dst: v4("8.8.8.8"), Proto: 132, SrcPort: 5, DstPort: 55, Ifindex: 1}, 0},
		{Packet{IPv6: true, Src: v6("2001:db8::9"), Dst: v6("2001:db8::1"), Proto: 6, SrcPort: 5, DstPort: 80, Ifindex: 2}, 7},
	}
	for i, tt := range tests {
		if got := c.Mark(&tt.p); got != tt.want {
			t.Errorf("%d: Mark = %#x, want %#x", i, got, tt.want)
		}
	}

	// Unchanged rules read back identically, so polling can compare.
	again, err := Read(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if again != tables {
		t.Errorf("unchanged rules read differently:\n%+v\n%+v", tables, again)
	}
	c2, _, err := Parse(again, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n4, n6 := c2.Len(); n4 != 3 || n6 != 1 {
		t.Errorf("re-read Len = %d, %d", n4, n6)
	}
}

func TestReadRunnerError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Read(context.Background(), func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("Read did not bound the command with a deadline")
		}
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
}
