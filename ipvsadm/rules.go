package ipvsadm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxRuleLine bounds one line of a rules file.
const maxRuleLine = 1 << 20

// ParseRules reads the ipvsadm save/restore format (what -S prints, what
// -R and ipvsadm-restore read) and returns one Command per rule line, with
// Command.Line set. Lines are split on white space and parsed exactly like
// a command line; tokens equal to "ipvsadm" (or "uvsadm") are dropped, so
// lines may start with the program name. Blank lines and lines whose first
// non-blank character is '#' are skipped (as ipvsadm-restore does).
//
// Only state-changing commands are accepted: -A -E -D -a -e -d -C -Z --set
// and the FULLNAT -P/-Q. Any error is a *LineError naming the file, the
// line and the offending argument, wrapping the *Error ipvsadm would have
// reported (with its exit code); reading stops at the first bad line.
func ParseRules(r io.Reader, name string) ([]Command, error) {
	var cmds []Command
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxRuleLine)
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		args := fields[:0:0]
		for _, f := range fields {
			if f != "ipvsadm" && f != DefaultProg {
				args = append(args, f)
			}
		}
		if len(args) == 0 {
			continue
		}
		cmd, err := Parse(args)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				return nil, err
			}
			if e.Code == ExitPopt && strings.HasPrefix(e.Msg, "Try `") {
				e = &Error{Code: ExitPopt, Msg: "a rule must start with a command option (-A -E -D -a -e -d -C -Z --set -P -Q)", Token: args[0]}
			}
			return nil, &LineError{Name: name, Line: line, Err: e}
		}
		if !restorable(cmd.Kind) {
			return nil, &LineError{Name: name, Line: line, Err: &Error{
				Code:  ExitUsage,
				Msg:   fmt.Sprintf("the %s command cannot be used in a rules file (only -A -E -D -a -e -d -C -Z --set -P -Q)", cmd.Kind),
				Token: args[0],
			}}
		}
		cmd.Line = line
		cmds = append(cmds, cmd)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read rules %s after line %d: %w", name, line, err)
	}
	return cmds, nil
}

// restorable reports whether a command may appear in a rules file.
func restorable(k CmdKind) bool {
	switch k {
	case CmdAddService, CmdEditService, CmdDelService, CmdAddServer, CmdEditServer,
		CmdDelServer, CmdFlush, CmdZero, CmdSetTimeout, CmdAddLaddr, CmdDelLaddr:
		return true
	}
	return false
}
