package director

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/control/wire"
)

func TestLoggerFormats(t *testing.T) {
	var b bytes.Buffer
	lg, err := newLogger(LogJSON, "info", &b)
	if err != nil {
		t.Fatal(err)
	}
	lg.Info("serving", zap.Int("workers", 2))
	lg.Debug("not shown")
	var e map[string]any
	if err := json.Unmarshal(b.Bytes(), &e); err != nil {
		t.Fatalf("--log-format json: %q is not one JSON object: %v", b.String(), err)
	}
	if e["level"] != "info" || e["msg"] != "serving" || e["workers"] != float64(2) || e["ts"] == nil {
		t.Errorf("--log-format json: %v", e)
	}
	b.Reset()
	lg, err = newLogger(LogConsole, "debug", &b)
	if err != nil {
		t.Fatal(err)
	}
	lg.Debug("shown", zap.String("k", "v"))
	if f := strings.Split(strings.TrimSpace(b.String()), "\t"); len(f) < 4 || f[1] != "debug" || f[3] != "shown" || !strings.Contains(b.String(), `{"k": "v"}`) {
		t.Errorf("--log-format console: %q", b.String())
	}
	for _, c := range [][2]string{{"xml", "info"}, {LogJSON, "loud"}} {
		if _, err := newLogger(c[0], c[1], &b); err == nil {
			t.Errorf("newLogger(%q, %q) accepted", c[0], c[1])
		}
	}
}

// TestLoggerRateLimitsWarnings: a warning repeated in a burst is logged
// warnFirst times and counted as suppressed after; Info and Error
// entries (state changes, failures) are all logged.
func TestLoggerRateLimitsWarnings(t *testing.T) {
	var b bytes.Buffer
	lg, err := newLogger(LogJSON, "info", &b)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50 // well within one warnTick on a loaded machine, below warnThereafter
	for range n {
		lg.Warn("refreshing interfaces")
		lg.Info("real server up")
		lg.Error("sync daemon failed")
	}
	count := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		count[e["msg"].(string)]++
	}
	if count["refreshing interfaces"] != warnFirst || count["real server up"] != n || count["sync daemon failed"] != n {
		t.Errorf("entries logged: %v; want %d warnings, %d of each other", count, warnFirst, n)
	}
	if got := lg.suppressed.Load(); got != n-warnFirst {
		t.Errorf("suppressed %d, want %d", got, n-warnFirst)
	}
	// Another message is not held back by the first one's limit.
	lg.Warn("another warning")
	if !strings.Contains(b.String(), "another warning") {
		t.Error("a different warning was suppressed")
	}
}

func TestAuditControl(t *testing.T) {
	var b bytes.Buffer
	lg, err := newLogger(LogJSON, "info", &b)
	if err != nil {
		t.Fatal(err)
	}
	audit := auditControl(lg.Logger)
	audit(wire.Cred{PID: 42, UID: 0}, "ipvsadm", []string{"-A", "-t", "10.0.0.1:80", "-s", "rr"}, 0)
	audit(wire.Cred{PID: 43, UID: 1000}, "ipvsadm", []string{"-C"}, 255)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), b.String())
	}
	var ok, refused map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &ok)
	_ = json.Unmarshal([]byte(lines[1]), &refused)
	if ok["level"] != "info" || ok["command"] != "ipvsadm -A -t 10.0.0.1:80 -s rr" || ok["pid"] != float64(42) || ok["uid"] != float64(0) {
		t.Errorf("change logged as %v", ok)
	}
	if refused["level"] != "warn" || refused["command"] != "ipvsadm -C" || refused["exit"] != float64(255) || refused["uid"] != float64(1000) {
		t.Errorf("refused change logged as %v", refused)
	}
}
