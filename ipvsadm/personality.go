package ipvsadm

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
)

// Personality is which of the three ipvsadm programs an invocation behaves
// as, chosen by argv[0]'s base name so that symlinks work.
type Personality uint8

// The personalities.
const (
	AsAdm     Personality = iota // ipvsadm
	AsSave                       // ipvsadm-save [-n]: prints the -S rules
	AsRestore                    // ipvsadm-restore: -C, then -R from stdin
)

// ProgPersonality splits argv[0] into the personality and the program name
// used in messages: a base name ending in "-save" behaves as ipvsadm-save,
// one ending in "-restore" as ipvsadm-restore, anything else as ipvsadm
// ("ipvsadm-save" → AsSave, "ipvsadm"). An empty argv[0] is DefaultProg.
func ProgPersonality(argv0 string) (Personality, string) {
	base := filepath.Base(argv0)
	if argv0 == "" || base == "." || base == "/" {
		return AsAdm, DefaultProg
	}
	switch {
	case strings.HasSuffix(base, "-save") && len(base) > len("-save"):
		return AsSave, strings.TrimSuffix(base, "-save")
	case strings.HasSuffix(base, "-restore") && len(base) > len("-restore"):
		return AsRestore, strings.TrimSuffix(base, "-restore")
	}
	return AsAdm, base
}

// SaveArgsOK reports whether args are ones the ipvsadm-save script takes
// (none, or "-n").
func SaveArgsOK(args []string) bool {
	return len(args) == 0 || (len(args) == 1 && args[0] == "-n")
}

// SaveUsage is the ipvsadm-save script's usage line (exit status ExitList).
func SaveUsage(prog string) string { return "Usage: " + prog + "-save [-n]" }

// Answer parses one ipvsadm command line and answers what ipvsadm answers
// before it talks to the kernel: a parse error (its message on stderr),
// -h (the usage on stdout) and -v (the version on stdout). done reports
// that the invocation ends there with status code; otherwise cmd is the
// command to execute.
func Answer(prog string, args []string, stdout, stderr io.Writer) (cmd Command, code int, done bool) {
	cmd, err := ParseAs(prog, args)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			_, _ = io.WriteString(stderr, e.Msg+"\n")
			return cmd, e.Code, true
		}
		_, _ = io.WriteString(stderr, err.Error()+"\n")
		return cmd, ExitUsage, true
	}
	switch cmd.Kind {
	case CmdHelp:
		_, _ = io.WriteString(stdout, UsageFor(prog))
		return cmd, ExitOK, true
	case CmdVersion:
		_, _ = io.WriteString(stdout, Version())
		return cmd, ExitOK, true
	}
	return cmd, ExitOK, false
}

// Unavailable is ipvsadm's message (exit status ExitUsage) when IPVS cannot
// be reached; why completes "Can't initialize ipvs: ".
func Unavailable(why string) string {
	return "Can't initialize ipvs: " + why + "\nAre you sure that IP Virtual Server is built in the kernel or as module?"
}
