package fwmark

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Runner runs a command and returns its standard output. Tests and the
// daemon can wrap it, for example to prefix "ip netns exec NS".
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// ExecRunner runs the command in the current network namespace.
func ExecRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).Output()
}

// ReadTimeout bounds each Read when ctx has no earlier deadline.
const ReadTimeout = 5 * time.Second

// Tables is the mangle table text of both families, normalised by Read:
// comment lines (which carry a timestamp) are dropped and chain policy
// counters are removed, so the text only changes when the rules do. It is
// comparable: the daemon polls Read every second or two and recompiles
// only when the new Tables differs (!=) from the last one.
type Tables struct {
	IPv4 string // output of "iptables-save -t mangle"
	IPv6 string // output of "ip6tables-save -t mangle"
}

// Read runs "iptables-save -t mangle" and "ip6tables-save -t mangle" with
// run (ExecRunner when nil), each bounded by ReadTimeout.
func Read(ctx context.Context, run Runner) (Tables, error) {
	if run == nil {
		run = ExecRunner
	}
	var t Tables
	for _, c := range []struct {
		cmd string
		dst *string
	}{{"iptables-save", &t.IPv4}, {"ip6tables-save", &t.IPv6}} {
		cctx, cancel := context.WithTimeout(ctx, ReadTimeout)
		out, err := run(cctx, c.cmd, "-t", "mangle")
		cancel()
		if err != nil {
			return Tables{}, fmt.Errorf("read %s: %w", c.cmd, err)
		}
		*c.dst = normalize(string(out))
	}
	return t, nil
}

// Parse parses both families of t and compiles them with ifaces (see
// Compile). Unsupported rules of both families are returned; they are
// skipped by the Classifier.
func Parse(t Tables, ifaces map[string]int) (*Classifier, []Unsupported, error) {
	v4, u4, err := ParseFamily(t.IPv4, false)
	if err != nil {
		return nil, nil, fmt.Errorf("ipv4: %w", err)
	}
	v6, u6, err := ParseFamily(t.IPv6, true)
	if err != nil {
		return nil, nil, fmt.Errorf("ipv6: %w", err)
	}
	return Compile(v4, v6, ifaces), append(u4, u6...), nil
}

// normalize drops comment lines and the packet counters of chain lines
// (":PREROUTING ACCEPT [12:3456]") from iptables-save output.
func normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for line := range strings.Lines(s) {
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		if t[0] == ':' {
			if i := strings.LastIndexByte(t, '['); i > 0 && strings.HasSuffix(t, "]") {
				t = strings.TrimSpace(t[:i])
			}
		}
		b.WriteString(t)
		b.WriteByte('\n')
	}
	return b.String()
}
