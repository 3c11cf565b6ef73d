// Package contentsync keeps the web roots of the real servers identical to
// the director's: sersync's job (seed 000) for uvs users. It watches a
// directory tree with inotify (through fsnotify), coalesces and filters the
// events over a short window, and hands each batch to the real rsync, once
// per target, several targets in parallel. A target whose rsync fails keeps
// its changes in a failure queue, retried with exponential backoff and
// persisted in a state directory across restarts; a periodic full sync
// (sersync's crontab) catches whatever the events missed.
//
// It reads sersync's confxml.xml (ParseConfXML) and plain flags (Main).
// It links no data plane, control plane or daemon: it is a separate
// program (cmd/uvs-sync) that only runs rsync.
package contentsync

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Events are the inotify events that start a sync, sersync's <inotify>
// switches. fsnotify reports IN_CLOSE_WRITE and IN_MODIFY both as Write
// (close-write is not exported by it), so Write counts when either
// closeWrite or modify is on; IN_MOVED_TO arrives as Create, so a created
// file counts when createFile or moveTo is on.
type Events struct {
	Delete, CreateFolder, CreateFile, CloseWrite, MoveFrom, MoveTo, Attrib, Modify bool
}

// sersyncEvents are sersync's defaults (its shipped confxml.xml).
var sersyncEvents = Events{Delete: true, CreateFolder: true, CreateFile: false, CloseWrite: true,
	MoveFrom: true, MoveTo: true, Attrib: false, Modify: false}

// Target is one place the tree is copied to.
type Target struct {
	// Host is the remote's address or name (sersync's <remote ip>).
	Host string
	// Module is the rsync daemon module, with an optional path below it
	// ("www", "backup/"), or with SSH the remote directory
	// ("/data/backup").
	Module string
	// User is the rsync daemon's auth user (auth users), or the ssh
	// login; empty for none.
	User string
	// Port is the daemon's port (rsync's 873 when 0) or ssh's.
	Port int
	// SSH selects rsync over a remote shell instead of the daemon.
	SSH bool
	// PasswordFile is rsync --password-file (daemon mode only).
	PasswordFile string
}

// Dest is the destination argument rsync takes for the target:
// rsync://[user@]host[:port]/module/ for a daemon, [user@]host:path over
// ssh.
func (t Target) Dest() string {
	user := ""
	if t.User != "" {
		user = t.User + "@"
	}
	if t.SSH {
		h := t.Host
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		p := t.Module
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		return user + h + ":" + p
	}
	hp := t.Host
	if strings.Contains(hp, ":") {
		hp = "[" + hp + "]"
	}
	if t.Port != 0 {
		hp += ":" + strconv.Itoa(t.Port)
	}
	m := strings.Trim(t.Module, "/")
	return "rsync://" + user + hp + "/" + m + "/"
}

// Config is what uvs-sync does: sersync's confxml.xml and the flags,
// validated.
type Config struct {
	// Watch is the local tree (<localpath watch>).
	Watch   string
	Targets []Target
	// Params are rsync's common parameters (<commonParams params>),
	// "-artuz" by default.
	Params []string
	// Timeout is rsync --timeout in seconds (0: none).
	Timeout int
	// Excludes are the event filters (<filter start="true"><exclude
	// expression>): regular expressions matched against the path
	// relative to Watch. The editors' temporary files are always
	// filtered (DefaultFilters).
	Excludes []*regexp.Regexp
	Events   Events
	// FailLog is sersync's failLog path; uvs-sync keeps its failure
	// queue in the state directory instead and only reports it.
	FailLog string
	// RetryMax caps the failure queue's backoff (sersync's failLog
	// timeToExecute: failed syncs are retried at least that often).
	RetryMax time.Duration
	// Crontab is the period of the full sync (0: off), sersync's
	// <crontab schedule> in minutes.
	Crontab time.Duration
	// CronExcludes are rsync --exclude patterns of the full sync
	// (<crontabfilter>).
	CronExcludes []string
	Debug        bool
	// Warnings are things the file asked for that uvs-sync does not do
	// (plugins), each with its line.
	Warnings []string
}

// DefaultConfig is sersync's defaults.
func DefaultConfig() *Config {
	return &Config{Params: []string{"-artuz"}, Events: sersyncEvents, RetryMax: 60 * time.Minute}
}

// DefaultFilters are the editors' temporary files sersync drops before
// they reach rsync, matched against the base name: vim's swap files and
// its write test, backup files ending in ~, emacs's lock and autosave
// files.
var DefaultFilters = []*regexp.Regexp{
	regexp.MustCompile(`^\..*\.(swp|swx|swpx)$`),
	regexp.MustCompile(`~$`),
	regexp.MustCompile(`^4913$`),
	regexp.MustCompile(`^\.#`),
	regexp.MustCompile(`^#.*#$`),
}

// defaultRsyncExcludes are DefaultFilters as rsync patterns, for the full
// sync (which walks the tree itself).
var defaultRsyncExcludes = []string{".*.swp", ".*.swx", ".*.swpx", "*~", "4913", ".#*", "#*#"}

// Filtered reports whether the change of rel (slash-separated, relative to
// the watched tree) is dropped.
func (c *Config) Filtered(rel string) bool {
	base := rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		base = rel[i+1:]
	}
	for _, re := range DefaultFilters {
		if re.MatchString(base) {
			return true
		}
	}
	for _, re := range c.Excludes {
		if re.MatchString(rel) {
			return true
		}
	}
	return false
}

// Validate checks that the configuration can run.
func (c *Config) Validate() error {
	if c.Watch == "" {
		return fmt.Errorf("no directory to watch (<localpath watch> or --watch)")
	}
	if len(c.Targets) == 0 {
		return fmt.Errorf("no target (<remote ip name> or --target)")
	}
	seen := map[string]bool{}
	for _, t := range c.Targets {
		if t.Host == "" || t.Module == "" {
			return fmt.Errorf("target %q: needs a host and a module or path", t.Dest())
		}
		if d := t.Dest(); seen[d] {
			return fmt.Errorf("target %s twice", d)
		} else {
			seen[d] = true
		}
	}
	return nil
}

// ParseTarget parses a --target: rsync://[user@]host[:port]/module[/path],
// [user@]host::module[/path] (a daemon), or [user@]host:/path (ssh).
func ParseTarget(s string) (Target, error) {
	bad := func(why string) (Target, error) {
		return Target{}, fmt.Errorf("target %q: %s (want rsync://[user@]host[:port]/module, [user@]host::module or [user@]host:/path)", s, why)
	}
	if strings.ContainsAny(s, " \t\n") {
		return bad("contains white space")
	}
	if rest, ok := strings.CutPrefix(s, "rsync://"); ok {
		u, err := url.Parse("rsync://" + rest)
		if err != nil {
			return bad(err.Error())
		}
		t := Target{Host: u.Hostname(), Module: strings.TrimPrefix(u.Path, "/")}
		if u.User != nil {
			t.User = u.User.Username()
		}
		if p := u.Port(); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 || n > 65535 {
				return bad("port " + p)
			}
			t.Port = n
		}
		if t.Host == "" || t.Module == "" {
			return bad("needs a host and a module")
		}
		return t, nil
	}
	var t Target
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		t.User, s = s[:i], s[i+1:]
		if t.User == "" {
			return bad("empty user")
		}
	}
	var host, mod string
	if strings.HasPrefix(s, "[") {
		j := strings.IndexByte(s, ']')
		if j < 0 {
			return bad("unclosed [")
		}
		host = s[1:j]
		switch rest := s[j+1:]; {
		case strings.HasPrefix(rest, "::"):
			mod = rest[2:]
		case strings.HasPrefix(rest, ":"):
			mod, t.SSH = rest[1:], true
		default:
			return bad("no ':' or '::' after ]")
		}
	} else if h, m, ok := strings.Cut(s, "::"); ok {
		host, mod = h, m
	} else if h, m, ok := strings.Cut(s, ":"); ok {
		host, mod, t.SSH = h, m, true
	} else {
		return bad("no ':' or '::'")
	}
	if err := checkHost(host); err != nil {
		return bad(err.Error())
	}
	if host == "" || mod == "" {
		return bad("needs a host and a module or path")
	}
	t.Host, t.Module = host, mod
	return t, nil
}

// checkHost reports whether h can be a host name or address.
func checkHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	if h == "" || len(h) > 253 {
		return fmt.Errorf("%q is not a host name or address", h)
	}
	for _, r := range h {
		if !(r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("%q is not a host name or address", h)
		}
	}
	return nil
}
