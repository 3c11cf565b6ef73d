package keepalived

import (
	"bufio"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// maxLine is keepalived's MAXBUF: a physical line that does not fit in
// 1024 bytes (including its newline) is dropped.
const maxLine = 1024

// maxDepth bounds include nesting and definition recursion.
const maxDepth = 32

// Limits on expansion, so that recursive definitions and nested
// sequences cannot make the reader run away.
const (
	maxExpanded = 16 << 10 // bytes of one line after substitution
	maxSteps    = 1 << 20  // lines processed, after all expansion
	maxWork     = 64 << 20 // bytes substituted and processed in all
)

// Pos is a place in the configuration: file name and 1-based line.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string { return p.File + ":" + strconv.Itoa(p.Line) }

// line is one logical line after comment removal, includes, definitions,
// conditionals and brace splitting: a keyword and its arguments, or a lone
// "{" or "}".
type line struct {
	Pos   Pos
	Words []string
	Text  string // the line's text after expansion (for quoted keywords)
}

// reader turns files into lines as keepalived's lib/parser.c does.
type reader struct {
	opt    Options
	fsys   fs.FS
	defs   map[string]*definition
	out    []line
	diags  []Diagnostic
	fatal  error
	depth  int
	curDir string
	steps  int
	work   int
}

// budget charges n bytes of work; false (and a fatal error) once the
// configuration expands beyond reason.
func (r *reader) budget(p Pos, n int) bool {
	r.work += n
	if r.steps++; r.steps > maxSteps || r.work > maxWork {
		if r.fatal == nil {
			r.fatal = &Error{Pos: p, Msg: "configuration expands to too many lines"}
		}
		return false
	}
	return true
}

type definition struct {
	value []string // one element per line; multi-line if len > 1 or multi
	multi bool
}

func (r *reader) warn(p Pos, format string, a ...any) {
	r.diags = append(r.diags, diag(p, SevWarning, format, a...))
}

func (r *reader) errorf(p Pos, format string, a ...any) {
	r.diags = append(r.diags, diag(p, SevError, format, a...))
}

// open reads a file through the injected file system or the OS.
func (r *reader) open(name string) ([]byte, error) {
	if r.fsys != nil {
		return fs.ReadFile(r.fsys, strings.TrimPrefix(path.Clean(name), "/"))
	}
	return os.ReadFile(name)
}

// readFile feeds every line of the named file.
func (r *reader) readFile(name string, data []byte) {
	if r.depth > maxDepth {
		r.fatal = &Error{Pos: Pos{File: name}, Msg: "include nesting too deep"}
		return
	}
	r.depth++
	saved := r.curDir
	r.curDir = dirOf(name)
	defer func() { r.depth--; r.curDir = saved }()

	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), len(data)+1)
	var ml *definition // multi-line definition being collected
	n := 0
	for sc.Scan() && r.fatal == nil {
		n++
		p := Pos{File: name, Line: n}
		raw := sc.Text()
		if len(raw)+1 > maxLine {
			r.warn(p, "line too long - ignoring")
			continue
		}
		if strings.IndexByte(raw, 0) >= 0 {
			r.warn(p, "line contains NUL - ignoring")
			continue
		}
		raw = strings.TrimRight(raw, "\r\n")
		text := r.decomment(raw, p)
		if ml != nil {
			cont := strings.HasSuffix(text, "\\")
			if cont {
				text = strings.TrimRight(strings.TrimSuffix(text, "\\"), " \t")
			}
			if text != "" {
				ml.value = append(ml.value, text)
			}
			if !cont {
				ml = nil
			}
			continue
		}
		if text == "" {
			continue
		}
		if r.include(text, p) {
			continue
		}
		ml = r.process(text, p, 0)
	}
	if err := sc.Err(); err != nil && r.fatal == nil {
		r.fatal = &Error{Pos: Pos{File: name}, Msg: err.Error()}
	}
}

func dirOf(name string) string {
	if !strings.Contains(name, "/") {
		return ""
	}
	return path.Dir(filepath.ToSlash(name))
}

// decomment is keepalived's decomment(): strip leading blanks, cut at an
// unquoted '!' or '#', turn \! and \# into literal characters, strip
// trailing blanks.
func (r *reader) decomment(s string, p Pos) string {
	s = strings.TrimLeft(s, " \t")
	var b strings.Builder
	inQuote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '\\' && i+1 < len(s) && (s[i+1] == '!' || s[i+1] == '#'):
			i++
			b.WriteByte(s[i])
			continue
		case !inQuote && (c == '!' || c == '#'):
			return strings.TrimRight(b.String(), " \t")
		}
		b.WriteByte(c)
	}
	if inQuote {
		r.warn(p, "Unterminated quote '%s'", s)
	}
	return strings.TrimRight(b.String(), " \t")
}

var includeWords = []string{"include", "includer", "includem", "includew", "includeb", "includea"}

// include handles an include line; it reports whether the line was one.
func (r *reader) include(text string, p Pos) bool {
	word, rest, _ := strings.Cut(text, " ")
	if w2, rest2, ok := strings.Cut(text, "\t"); ok && len(w2) < len(word) {
		word, rest = w2, rest2
	}
	known := false
	for _, w := range includeWords {
		if word == w {
			known = true
		}
	}
	if !known || rest == "" {
		return false
	}
	pattern := strings.TrimSpace(rest)
	strict := word != "include"
	if !strings.HasPrefix(pattern, "/") && r.curDir != "" {
		pattern = r.curDir + "/" + pattern
	}
	matches := r.glob(pattern)
	if len(matches) == 0 {
		if strict {
			r.errorf(p, "No config files matched '%s'", pattern)
		} else {
			r.warn(p, "No config files matched '%s'", pattern)
		}
		return true
	}
	for _, m := range matches {
		data, err := r.open(m)
		if err != nil {
			if strict {
				r.errorf(p, "Unable to open config file '%s': %v", m, err)
			} else {
				r.warn(p, "Unable to open config file '%s': %v", m, err)
			}
			continue
		}
		r.readFile(m, data)
	}
	return true
}

// glob expands pattern with csh-style braces, in sorted order, skipping
// directories.
func (r *reader) glob(pattern string) []string {
	var out []string
	for _, pat := range expandBraces(pattern) {
		var ms []string
		if r.fsys != nil {
			rel := strings.TrimPrefix(path.Clean(pat), "/")
			ms, _ = fs.Glob(r.fsys, rel)
			for i := range ms {
				if strings.HasPrefix(pat, "/") {
					ms[i] = "/" + ms[i]
				}
			}
		} else {
			ms, _ = filepath.Glob(pat)
		}
		sort.Strings(ms)
		for _, m := range ms {
			var st fs.FileInfo
			var err error
			if r.fsys != nil {
				st, err = fs.Stat(r.fsys, strings.TrimPrefix(path.Clean(m), "/"))
			} else {
				st, err = os.Stat(m)
			}
			if err != nil || st.IsDir() {
				continue
			}
			out = append(out, m)
		}
	}
	return out
}

// expandBraces expands the first {a,b} group recursively (GLOB_BRACE).
func expandBraces(p string) []string {
	i := strings.IndexByte(p, '{')
	if i < 0 {
		return []string{p}
	}
	depth := 0
	for j := i; j < len(p); j++ {
		switch p[j] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				var out []string
				for _, alt := range splitTop(p[i+1 : j]) {
					out = append(out, expandBraces(p[:i]+alt+p[j+1:])...)
				}
				return out
			}
		}
	}
	return []string{p}
}

func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// conditional applies "@ID " / "@^ID " prefixes; ok is false when the line
// is dropped.
func (r *reader) conditional(text string) (string, bool) {
	if !strings.HasPrefix(text, "@") {
		return text, true
	}
	id := text[1:]
	neg := strings.HasPrefix(id, "^")
	if neg {
		id = id[1:]
	}
	rest := ""
	if i := strings.IndexAny(id, " \t"); i >= 0 {
		id, rest = id[:i], strings.TrimLeft(id[i:], " \t")
	}
	if rest == "" {
		return "", false
	}
	match := id == r.opt.ConfigID || (r.opt.AlsoID != "" && id == r.opt.AlsoID)
	if match != neg {
		return rest, true
	}
	return "", false
}

// process handles one decommented, non-include line: conditionals,
// definitions, substitution, sequences, brace splitting. It returns a
// definition when the line starts a multi-line one.
func (r *reader) process(text string, p Pos, depth int) *definition {
	if depth > maxDepth {
		r.errorf(p, "definitions nested too deeply")
		return nil
	}
	if r.fatal != nil || !r.budget(p, len(text)) {
		return nil
	}
	text, ok := r.conditional(text)
	if !ok {
		return nil
	}
	if name, val, ok := parseDefinition(text); ok {
		d := &definition{}
		if strings.HasSuffix(val, "\\") {
			d.multi = true
			val = strings.TrimRight(strings.TrimSuffix(val, "\\"), " \t")
			if val != "" {
				d.value = append(d.value, val)
			}
			r.defs[name] = d
			return d
		}
		d.value = []string{val}
		r.defs[name] = d
		return nil
	}
	// A multi-line definition used alone on its line replays its lines.
	if name, ok := aloneUse(text); ok {
		if d := r.defs[name]; d != nil && d.multi {
			for _, l := range d.value {
				if sub := r.process(l, p, depth+1); sub != nil {
					// A multi-line definition inside a multi-line
					// definition cannot continue: keep what it has.
					sub.multi = true
				}
			}
			return nil
		}
	}
	if strings.HasPrefix(text, "~SEQ") || strings.HasPrefix(text, "~LST") {
		// Only the arguments are expanded here; the repeated rest is
		// processed once per value (it may be a multi-line use).
		if i := strings.IndexByte(text, ')'); i >= 0 {
			text = r.substitute(text[:i], 0) + text[i:]
		}
		r.sequence(text, p, depth)
		return nil
	}
	if strings.Contains(text, "$") {
		exp := r.substitute(text, 0)
		if !r.budget(p, len(exp)) {
			return nil
		}
		if exp != text {
			text = r.decomment(exp, p)
			if text == "" {
				return nil
			}
			if text, ok = r.conditional(text); !ok {
				return nil
			}
		}
	}
	if strings.HasPrefix(text, "~SEQ") || strings.HasPrefix(text, "~LST") {
		r.sequence(text, p, depth)
		return nil
	}
	r.emit(text, p)
	return nil
}

func isNameStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isNameChar(c byte) bool { return isNameStart(c) || (c >= '0' && c <= '9') }

// parseDefinition recognises "$NAME=VALUE" (blanks allowed before '=').
func parseDefinition(s string) (name, val string, ok bool) {
	if len(s) < 2 || s[0] != '$' || !isNameStart(s[1]) {
		return "", "", false
	}
	i := 2
	for i < len(s) && isNameChar(s[i]) {
		i++
	}
	name = s[1:i]
	j := i
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j >= len(s) || s[j] != '=' {
		return "", "", false
	}
	return name, strings.TrimSpace(s[j+1:]), true
}

// aloneUse recognises a line that is exactly "$NAME" or "${NAME}".
func aloneUse(s string) (string, bool) {
	if len(s) < 2 || s[0] != '$' {
		return "", false
	}
	if s[1] == '{' && strings.HasSuffix(s, "}") {
		n := s[2 : len(s)-1]
		return n, validName(n)
	}
	return s[1:], validName(s[1:])
}

func validName(n string) bool {
	if n == "" || !isNameStart(n[0]) {
		return false
	}
	for i := 1; i < len(n); i++ {
		if !isNameChar(n[i]) {
			return false
		}
	}
	return true
}

// substitute replaces $NAME (followed by blank, ',', ')' or end) and
// ${NAME} with their values, recursively. Unknown names stay literal.
func (r *reader) substitute(s string, depth int) string {
	if depth > maxDepth || !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		if s[i+1] == '{' {
			end := strings.IndexByte(s[i+2:], '}')
			if end >= 0 {
				inner := s[i+2 : i+2+end]
				if v, ok := r.lookup(inner); ok {
					b.WriteString(v)
					i += 2 + end
					changed = true
					continue
				}
			}
			b.WriteByte('$')
			continue
		}
		j := i + 1
		for j < len(s) && isNameChar(s[j]) {
			j++
		}
		if j > i+1 && isNameStart(s[i+1]) && (j == len(s) || strings.IndexByte(" \t,)", s[j]) >= 0) {
			if v, ok := r.lookup(s[i+1 : j]); ok {
				b.WriteString(v)
				i = j - 1
				changed = true
				continue
			}
		}
		b.WriteByte('$')
	}
	if !changed {
		return s
	}
	// Every pass counts as work (the next budget check stops the
	// reader): a line whose definitions refer to themselves would
	// otherwise rebuild maxExpanded bytes maxDepth times per use.
	if r.work += b.Len(); r.work > maxWork {
		return s
	}
	if b.Len() > maxExpanded {
		return b.String()[:maxExpanded]
	}
	return r.substitute(b.String(), depth+1)
}

// lookup returns a definition's value (multi-line values joined by
// blanks) or a predefined one.
func (r *reader) lookup(name string) (string, bool) {
	if d, ok := r.defs[name]; ok {
		return strings.Join(d.value, " "), true
	}
	switch {
	case name == "_PWD":
		if r.curDir == "" {
			return ".", true
		}
		return r.curDir, true
	case name == "_INSTANCE":
		return r.opt.Instance, true
	case name == "_HASH":
		return "#", true
	case name == "_BANG":
		return "!", true
	case name == "_RANDOM" || strings.HasPrefix(name, "_RANDOM "):
		// Deterministic: the lower bound (0 by default).
		f := strings.Fields(name)
		if len(f) > 1 {
			return f[1], true
		}
		return "0", true
	case strings.HasPrefix(name, "_ENV "):
		if r.opt.Getenv != nil {
			return r.opt.Getenv(strings.TrimSpace(name[5:])), true
		}
		return "", true
	}
	return "", false
}

// sequence expands ~SEQ(var, start[, step], end) and ~LST(var, v...)
// followed by the rest of the line.
func (r *reader) sequence(text string, p Pos, depth int) {
	open := strings.IndexByte(text, '(')
	closeIdx := strings.IndexByte(text, ')')
	if open < 0 || closeIdx < open {
		r.errorf(p, "Invalid sequence '%s'", text)
		return
	}
	kind := text[:open]
	args := strings.Split(text[open+1:closeIdx], ",")
	for i := range args {
		args[i] = strings.TrimSpace(args[i])
	}
	rest := strings.TrimSpace(text[closeIdx+1:])
	if len(args) < 2 || !validName(args[0]) {
		r.errorf(p, "Invalid sequence '%s'", text)
		return
	}
	name := args[0]
	saved, had := r.defs[name]
	var values []string
	switch kind {
	case "~SEQ", "~SEQx":
		base := 10
		if kind == "~SEQx" {
			base = 16
		}
		nums := make([]int64, 0, 3)
		for _, a := range args[1:] {
			v, err := strconv.ParseInt(a, base, 32)
			if err != nil {
				r.errorf(p, "Invalid sequence value '%s'", a)
				return
			}
			nums = append(nums, v)
		}
		start, step := nums[0], int64(1)
		var end int64
		switch len(nums) {
		case 1:
			start, end = 0, nums[0]
		case 2:
			end = nums[1]
		default:
			step, end = nums[1], nums[2]
		}
		if step == 0 || (end-start)/step > 65536 {
			r.errorf(p, "Invalid sequence '%s'", text)
			return
		}
		for v := start; (step > 0 && v <= end) || (step < 0 && v >= end); v += step {
			values = append(values, strconv.FormatInt(v, base))
		}
	case "~LST":
		values = args[1:]
	default:
		r.errorf(p, "Invalid sequence '%s'", text)
		return
	}
	for _, v := range values {
		if r.fatal != nil {
			break
		}
		r.defs[name] = &definition{value: []string{v}}
		r.process(rest, p, depth+1)
	}
	if had {
		r.defs[name] = saved
	} else {
		delete(r.defs, name)
	}
}

// emit splits braces onto their own lines and tokenises.
func (r *reader) emit(text string, p Pos) {
	for text != "" {
		i := braceIndex(text)
		if i < 0 {
			r.out = append(r.out, line{Pos: p, Words: r.tokenize(text, p), Text: text})
			return
		}
		if before := strings.TrimRight(text[:i], " \t"); before != "" {
			r.out = append(r.out, line{Pos: p, Words: r.tokenize(before, p), Text: before})
		}
		r.out = append(r.out, line{Pos: p, Words: []string{text[i : i+1]}, Text: text[i : i+1]})
		text = strings.TrimLeft(text[i+1:], " \t")
	}
}

func braceIndex(s string) int {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQuote = !inQuote
		case '{', '}':
			if !inQuote {
				return i
			}
		}
	}
	return -1
}

// tokenize is alloc_strvec_r: blank-separated words, "..." as one word
// without the quotes.
func (r *reader) tokenize(s string, p Pos) []string {
	var words []string
	i := 0
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			break
		}
		if s[i] == '"' {
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				words = append(words, s[i+1:])
				break
			}
			words = append(words, s[i+1:i+1+end])
			i += end + 2
			continue
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '"' {
			j++
		}
		words = append(words, s[i:j])
		i = j
	}
	return words
}

// readAll runs the reader over the main file's contents.
func readAll(name string, src io.Reader, opt Options) ([]line, []Diagnostic, error) {
	data, err := io.ReadAll(src)
	if err != nil {
		return nil, nil, &Error{Pos: Pos{File: name}, Msg: err.Error()}
	}
	r := &reader{opt: opt, fsys: opt.FS, defs: map[string]*definition{}}
	r.readFile(name, data)
	return r.out, r.diags, r.fatal
}
