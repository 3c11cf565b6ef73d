package director

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/uvs-lb/uvs/control/wire"
)

// Log formats for --log-format.
const (
	LogConsole = "console" // one line per entry: time, level, caller, message, fields
	LogJSON    = "json"    // one JSON object per line (ts, level, caller, msg, fields)
)

// Warning rate limit: within each warnTick, a warning with a given
// message is logged warnFirst times, then once every warnThereafter
// times. Other levels are never dropped: a state change (Info) or a
// failure (Error) is logged every time it happens.
const (
	warnTick       = 10 * time.Second
	warnFirst      = 5
	warnThereafter = 1000
)

// logger is uvsd's logger and what its rate limit dropped.
type logger struct {
	*zap.Logger
	// suppressed counts the warnings the rate limit dropped.
	suppressed *atomic.Uint64
}

// newLogger builds uvsd's logger: entries at level and above, in format
// (LogConsole or LogJSON), written to w; repeated warnings are
// rate-limited per message (warnTick, warnFirst, warnThereafter).
func newLogger(format, level string, w io.Writer) (logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return logger{}, fmt.Errorf("bad --log-level %q (debug, info, warn, error)", level)
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch format {
	case LogConsole:
		enc = zapcore.NewConsoleEncoder(ec)
	case LogJSON:
		enc = zapcore.NewJSONEncoder(ec)
	default:
		return logger{}, fmt.Errorf("bad --log-format %q (console, json)", format)
	}
	ws := zapcore.Lock(zapcore.AddSync(w))
	warn := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l == zapcore.WarnLevel && lvl.Enabled(l) })
	rest := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l != zapcore.WarnLevel && lvl.Enabled(l) })
	suppressed := new(atomic.Uint64)
	hook := zapcore.SamplerHook(func(_ zapcore.Entry, dec zapcore.SamplingDecision) {
		if dec&zapcore.LogDropped != 0 {
			suppressed.Add(1)
		}
	})
	core := zapcore.NewTee(
		zapcore.NewSamplerWithOptions(zapcore.NewCore(enc, ws, warn), warnTick, warnFirst, warnThereafter, hook),
		zapcore.NewCore(enc, ws, rest),
	)
	// An error an operator reads is one line: no stack traces.
	return logger{Logger: zap.New(core, zap.AddCaller()), suppressed: suppressed}, nil
}

// auditControl logs a uvsadm command that may have changed the
// configuration (control.Server.Audit): who ran it, the command line and
// whether it took. A refused change is logged too, at Warn.
func auditControl(log *zap.Logger) func(wire.Cred, string, []string, int) {
	return func(c wire.Cred, prog string, args []string, code int) {
		fields := []zap.Field{zap.String("command", prog+" "+strings.Join(args, " ")),
			zap.Uint32("uid", c.UID), zap.Int("pid", c.PID), zap.Int("exit", code)}
		if code != 0 {
			log.Warn("uvsadm change refused", fields...)
			return
		}
		log.Info("configuration changed by uvsadm", fields...)
	}
}
