package fuzzwatch

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestGuardQuiet: an input done in time stops the watchdog.
func TestGuardQuiet(t *testing.T) {
	stop := Guard(t, 50*time.Millisecond, func() string { return "quick" })
	stop()
	time.Sleep(100 * time.Millisecond) // the watchdog would have fired by now
}

// TestGuardFires runs a hung "input" in a child process: the watchdog must
// end it with a panic naming the input and showing the stuck goroutine.
func TestGuardFires(t *testing.T) {
	if os.Getenv("FUZZWATCH_CHILD") == "1" {
		defer Guard(t, 100*time.Millisecond, func() string { return `input "stuck"` })()
		stuckForever()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGuardFires$", "-test.v")
	cmd.Env = append(os.Environ(), "FUZZWATCH_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the hung child exited 0:\n%s", out)
	}
	for _, want := range []string{"fuzzwatch: TestGuardFires", `input "stuck"`, "stuckForever", "panic: fuzzwatch"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
}

func stuckForever() {
	select {}
}
