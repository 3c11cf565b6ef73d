package contentsync

import (
	"slices"
	"strings"
)

// Changes is a coalesced set of changed paths, relative to the watched
// tree and slash-separated, or a full sync. A path stands for itself and,
// when it is a directory, everything below it: a directory created with
// files already inside, or deleted with its files, is one entry.
type Changes struct {
	Full  bool
	Paths map[string]struct{}
}

// Len is the number of paths (0 for a full sync).
func (c *Changes) Len() int { return len(c.Paths) }

// Empty reports whether there is nothing to sync.
func (c *Changes) Empty() bool { return !c.Full && len(c.Paths) == 0 }

// Add records a changed path; a path under one already recorded is
// covered by it. max bounds the set: beyond it the set becomes a full
// sync (rsync walks the tree instead of a list).
func (c *Changes) Add(rel string, max int) {
	if c.Full || rel == "" {
		return
	}
	if c.Paths == nil {
		c.Paths = map[string]struct{}{}
	}
	if _, ok := c.Paths[rel]; ok {
		return
	}
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' {
			if _, ok := c.Paths[rel[:i]]; ok {
				return
			}
		}
	}
	c.Paths[rel] = struct{}{}
	if max > 0 && len(c.Paths) > max {
		c.SetFull()
	}
}

// SetFull turns the set into a full sync.
func (c *Changes) SetFull() { c.Full, c.Paths = true, nil }

// Merge adds o's changes.
func (c *Changes) Merge(o *Changes, max int) {
	if o.Full {
		c.SetFull()
		return
	}
	for p := range o.Paths {
		c.Add(p, max)
	}
}

// Take returns the changes and empties c.
func (c *Changes) Take() Changes {
	out := *c
	*c = Changes{}
	return out
}

// Sorted lists the paths in order.
func (c *Changes) Sorted() []string {
	out := make([]string, 0, len(c.Paths))
	for p := range c.Paths {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Describe is the log's "what": "full tree", or the count and the first
// few paths.
func (c *Changes) Describe() string {
	if c.Full {
		return "full tree"
	}
	ps := c.Sorted()
	const show = 3
	var b strings.Builder
	if len(ps) == 1 {
		b.WriteString("1 path (")
	} else {
		b.WriteString(itoa(len(ps)) + " paths (")
	}
	for i, p := range ps {
		if i == show {
			b.WriteString(", …")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p)
	}
	b.WriteString(")")
	return b.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// FilterRules turns the changed paths into rsync filter rules for one
// transfer of the tree's root with --recursive --delete: each path is
// included (as itself and, if it is a directory, with everything below),
// each of its ancestor directories is included so that rsync descends to
// it, and everything else is excluded. rsync then sends the paths that
// exist and, because --delete removes what the receiver has and the
// sender lacks only where the filter does not exclude it, deletes the
// paths that are gone — and nothing else: excluded files are protected
// from deletion (rsync(1), FILTER RULES, "protect"). Names holding a
// newline cannot be written as a rule and are returned in bad.
func FilterRules(paths []string) (rules string, bad []string) {
	var b strings.Builder
	dirs := map[string]bool{}
	var ancestors []string
	for _, p := range paths {
		if strings.ContainsAny(p, "\n\r") {
			bad = append(bad, p)
			continue
		}
		for i := 0; i < len(p); i++ {
			if p[i] == '/' && !dirs[p[:i]] {
				dirs[p[:i]] = true
				ancestors = append(ancestors, p[:i])
			}
		}
	}
	slices.Sort(ancestors)
	for _, a := range ancestors {
		b.WriteString("+ /" + escapePattern(a) + "/\n")
	}
	for _, p := range paths {
		if strings.ContainsAny(p, "\n\r") {
			continue
		}
		b.WriteString("+ /" + escapePattern(p) + "\n")
		b.WriteString("+ /" + escapeWild(p) + "/***\n")
	}
	b.WriteString("- *\n")
	return b.String(), bad
}

// escapePattern makes a file name a literal rsync pattern. rsync matches
// a pattern holding *, ? or [ as a wildcard, where a backslash escapes;
// any other pattern is compared as a plain string, backslashes included.
func escapePattern(name string) string {
	if !strings.ContainsAny(name, "*?[") {
		return name
	}
	return escapeWild(name)
}

// escapeWild escapes name for a pattern that is a wildcard anyway (one
// ending in /***).
func escapeWild(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch r {
		case '*', '?', '[', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
