package healthcheck

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// MiscCheck is keepalived's MISC_CHECK: run a program and judge the real
// server by its exit status (check_misc.c). The program is started with
// execve, without a shell (a script that is not a valid executable falls
// back to /bin/sh, as keepalived does on ENOEXEC), in a process group of
// its own, with stdin, stdout and stderr on /dev/null.
//
//	exit 0                       success, configured weight
//	exit 1                       failure
//	exit 2..255 with Dynamic     success, Result.Weight = status − 2
//	exit 2..255 without Dynamic  failure
//	killed by a signal           failure
//	still running after Timeout  SIGTERM to the group, SIGKILL 2 s later: failure ("timed out")
//
// When the program has exited, whatever is left in its process group is
// killed, so a probe never leaves processes behind. MISC_CHECK has no
// connection keywords: Target.Addr only names the server in messages.
type MiscCheck struct {
	// Argv is misc_path split into words (SplitMiscPath); Argv[0] is the
	// program.
	Argv []string
	// Timeout is misc_timeout; the caller passes the default (the virtual
	// server's delay_loop) when it is unset. Zero falls back to
	// Target.Timeout.
	Timeout time.Duration
	// Dynamic is misc_dynamic.
	Dynamic bool
	// User and Group are the `user name [group]` keywords: run as that
	// user (and its primary group, or Group). Needs root. Empty: as us.
	User, Group string
	// Server names the checked server in messages (keepalived prints
	// "[rs] VS [vs]"); empty: Target.Addr.
	Server string
}

// miscKillDelay is how long a timed-out script has between SIGTERM and
// SIGKILL (check_misc.c).
const miscKillDelay = 2 * time.Second

// miscResult turns how the program ended into a Result, with keepalived's
// wording: "Misc check for [S] by [P] succeeded|failed|timed out[ (exited
// with status N)| (due to signal N)]."
func (m *MiscCheck) miscResult(t Target, exited bool, status int, signal int, timedOut bool) Result {
	var r Result
	what, reason := "failed", ""
	switch {
	case exited && status == 0:
		r.OK, what = true, "succeeded"
	case exited && m.Dynamic && status >= 2 && status <= 255:
		r.OK, what = true, "succeeded"
		r.Weight, r.HasWeight = status-2, true
	case exited:
		reason = fmt.Sprintf(" (exited with status %d)", status)
	case timedOut:
		what = "timed out"
	default:
		reason = fmt.Sprintf(" (due to signal %d)", signal)
	}
	r.Msg = fmt.Sprintf("Misc check for [%s] by [%s] %s%s.", m.serverName(t), strings.Join(m.Argv, " "), what, reason)
	return r
}

func (m *MiscCheck) serverName(t Target) string {
	if m.Server != "" {
		return m.Server
	}
	if t.Addr.IsValid() {
		return t.Addr.String()
	}
	return "?"
}

// errMiscPath reports a misc_path keepalived would reject.
var errMiscPath = errors.New("misc_path")

// SplitMiscPath splits a misc_path command string into argv as keepalived
// does (alloc_strvec_quoted_escaped, lib/parser.c): words are separated by
// spaces and tabs; "…" and '…' quote (the quotes are removed, the other
// quote character is literal inside); a backslash escapes, inside quotes
// too: \a \b \E (ESC) \f \n \r \t \v, \nnn (1–3 octal digits), \xXX… (all
// following hex digits, low 8 bits kept), \cC (C & 0x1f), and any other
// character stands for itself (\" \' \\ \ ). An empty quoted word (two single
// quotes, or "") is an empty argument. Errors: an unterminated quote, a trailing
// backslash, or no words at all.
func SplitMiscPath(s string) ([]string, error) {
	var argv []string
	i := 0
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i == len(s) {
			break
		}
		var w []byte
		var quote byte
	word:
		for i < len(s) {
			c := s[i]
			switch {
			case c == '\\':
				i++
				if i == len(s) {
					return nil, fmt.Errorf("%w %q: missing escape char at end", errMiscPath, s)
				}
				var b byte
				b, i = miscEscape(s, i)
				w = append(w, b)
			case quote != 0 && c == quote:
				quote = 0
				i++
			case quote != 0:
				w = append(w, c)
				i++
			case c == '"' || c == '\'':
				quote = c
				i++
			case c == ' ' || c == '\t':
				break word
			default:
				w = append(w, c)
				i++
			}
		}
		if quote != 0 {
			return nil, fmt.Errorf("%w %q: missing terminating %c", errMiscPath, s, quote)
		}
		argv = append(argv, string(w))
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("%w %q: no program", errMiscPath, s)
	}
	return argv, nil
}

// miscEscape decodes the escape whose first character (after the
// backslash) is s[i], returning the byte and the index after it.
func miscEscape(s string, i int) (byte, int) {
	c := s[i]
	switch {
	case c == 'x' && i+1 < len(s) && miscIsHex(s[i+1]):
		var b byte
		for i++; i < len(s) && miscIsHex(s[i]); i++ {
			b = b<<4 | miscHexNibble(s[i])
		}
		return b, i
	case c == 'c' && i+1 < len(s):
		return s[i+1] & 0x1f, i + 2
	case c >= '0' && c <= '7':
		b := c - '0'
		i++
		for n := 0; n < 2 && i < len(s) && s[i] >= '0' && s[i] <= '7'; n++ {
			b = b<<3 + (s[i] - '0')
			i++
		}
		return b, i
	}
	switch c {
	case 'a':
		c = '\a'
	case 'b':
		c = '\b'
	case 'E':
		c = 0x1b
	case 'f':
		c = '\f'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 't':
		c = '\t'
	case 'v':
		c = '\v'
	}
	return c, i + 1
}

func miscIsHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func miscHexNibble(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// ResultForStatus is the Result of the program exiting with status (for
// callers that run it themselves, and tests).
func (m *MiscCheck) ResultForStatus(status int) Result {
	return m.miscResult(Target{}, true, status, 0, false)
}
