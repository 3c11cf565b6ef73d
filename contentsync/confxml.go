package contentsync

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxConfXML bounds what ParseConfXML reads: sersync's file is about 2 KiB.
const maxConfXML = 1 << 20

// element is what confxml.xml may hold at one place: its attributes and
// its children, by name.
type element struct {
	attrs    []string
	children map[string]*element
	// skip: the contents are not read (a plugin's definition).
	skip bool
}

func leaf(attrs ...string) *element { return &element{attrs: attrs} }

// schema is sersync 2.5's confxml.xml: every element and attribute it
// knows. Anything else is an error with its line.
var schema = func() *element {
	start := leaf("start")
	exclude := leaf("expression")
	return &element{children: map[string]*element{
		"head": {attrs: []string{"version"}, children: map[string]*element{
			"host":       leaf("hostip", "port"),
			"debug":      start,
			"fileSystem": leaf("xfs"),
			"filter":     {attrs: []string{"start"}, children: map[string]*element{"exclude": exclude}},
			"inotify": {children: map[string]*element{
				"delete": start, "createFolder": start, "createFile": start, "closeWrite": start,
				"moveFrom": start, "moveTo": start, "attrib": start, "modify": start,
			}},
			"sersync": {children: map[string]*element{
				"localpath": {attrs: []string{"watch"}, children: map[string]*element{"remote": leaf("ip", "name")}},
				"rsync": {children: map[string]*element{
					"commonParams":    leaf("params"),
					"auth":            leaf("start", "users", "passwordfile"),
					"userDefinedPort": leaf("start", "port"),
					"timeout":         leaf("start", "time"),
					"ssh":             start,
				}},
				"failLog": leaf("path", "timeToExecute"),
				"crontab": {attrs: []string{"start", "schedule"}, children: map[string]*element{
					"crontabfilter": {attrs: []string{"start"}, children: map[string]*element{"exclude": exclude}},
				}},
				"plugin": leaf("start", "name"),
			}},
			"plugin": {attrs: []string{"name"}, skip: true},
		}},
	}}
}()

// PosError is an error about a place in confxml.xml.
type PosError struct {
	Line int
	Msg  string
}

func (e *PosError) Error() string { return fmt.Sprintf("confxml.xml line %d: %s", e.Line, e.Msg) }

// ParseConfXML reads sersync's confxml.xml, as seed 000 writes it, on top
// of sersync's defaults. Unknown elements and attributes, bad values and
// duplicates are errors naming their line; plugins are reported in
// Config.Warnings (uvs-sync runs none); a plugin switched on in <sersync>
// is an error.
func ParseConfXML(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfXML+1))
	if err != nil {
		return nil, fmt.Errorf("confxml.xml: %w", err)
	}
	if len(data) > maxConfXML {
		return nil, fmt.Errorf("confxml.xml: larger than %d bytes", maxConfXML)
	}
	p := &confParser{c: DefaultConfig(), d: xml.NewDecoder(bytes.NewReader(data))}
	p.d.CharsetReader = charsetReader
	if err := p.parse(); err != nil {
		return nil, err
	}
	return p.c, nil
}

// charsetReader accepts sersync's declared ISO-8859-1 (and UTF-8, ASCII).
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return in, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1":
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		for _, c := range b {
			out.WriteRune(rune(c))
		}
		return &out, nil
	}
	return nil, fmt.Errorf("encoding %q not supported (want UTF-8 or ISO-8859-1)", label)
}

type confParser struct {
	c    *Config
	d    *xml.Decoder
	seen map[string]int // element path -> line, for duplicates
	// what the file set, applied once the whole file is read
	remotes                   []remoteAt
	authOn, portOn, sshOn     bool
	users, passwordFile, port string
	portLine                  int
	filterOn, cronFilterOn    bool
	excludes, cronExcludes    []exprAt
	cronOn                    bool
	schedule                  string
	scheduleLine              int
	timeoutOn                 bool
	timeout                   string
	timeoutLine               int
	localpaths                int
}

type remoteAt struct {
	ip, name string
	line     int
}

type exprAt struct {
	expr string
	line int
}

func (p *confParser) line() int { l, _ := p.d.InputPos(); return l }

func (p *confParser) errf(line int, format string, args ...any) error {
	return &PosError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *confParser) parse() error {
	p.seen = map[string]int{}
	sawHead := false
	for {
		tok, err := p.d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return p.xmlErr(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if sawHead {
				return p.errf(p.line(), "<%s> after </head>: one <head> only", t.Name.Local)
			}
			if err := p.element(t, schema, ""); err != nil {
				return err
			}
			sawHead = true
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return p.errf(p.line(), "text %q outside <head>", short(string(t)))
			}
		}
	}
	if !sawHead {
		return p.errf(p.line(), "no <head> element")
	}
	return p.finish()
}

func (p *confParser) xmlErr(err error) error {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return &PosError{Line: se.Line, Msg: se.Msg}
	}
	return p.errf(p.line(), "%v", err)
}

func short(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// element reads start (whose allowed children parent describes) up to its
// end.
func (p *confParser) element(start xml.StartElement, parent *element, path string) error {
	line := p.line()
	name := start.Name.Local
	if start.Name.Space != "" {
		return p.errf(line, "<%s:%s>: namespaces are not part of confxml.xml", start.Name.Space, name)
	}
	el, ok := parent.children[name]
	if !ok {
		where := "at the top"
		if path != "" {
			where = "in <" + path[strings.LastIndexByte(path, '/')+1:] + ">"
		}
		return p.errf(line, "unknown element <%s> %s (known: %s)", name, where, known(parent))
	}
	path += "/" + name
	attrs := map[string]string{}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			return p.errf(line, "<%s %s:%s>: unknown attribute", name, a.Name.Space, a.Name.Local)
		}
		if !contains(el.attrs, a.Name.Local) {
			return p.errf(line, "<%s>: unknown attribute %s=%q (known: %s)", name, a.Name.Local, a.Value, strings.Join(el.attrs, " "))
		}
		attrs[a.Name.Local] = a.Value
	}
	if el.skip {
		p.c.Warnings = append(p.c.Warnings, fmt.Sprintf("confxml.xml line %d: plugin %q: plugins are not supported, its definition is ignored", line, attrs["name"]))
		return p.d.Skip()
	}
	repeatable := name == "remote" || name == "exclude" || name == "localpath"
	if !repeatable {
		if prev, dup := p.seen[path]; dup {
			return p.errf(line, "<%s> again (first at line %d)", name, prev)
		}
		p.seen[path] = line
	}
	if err := p.apply(path, name, attrs, line); err != nil {
		return err
	}
	for {
		tok, err := p.d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return p.errf(p.line(), "<%s> of line %d is not closed", name, line)
			}
			return p.xmlErr(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := p.element(t, el, path); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return p.errf(p.line(), "text %q in <%s>: confxml.xml keeps values in attributes", short(string(t)), name)
			}
		case xml.Directive:
			return p.errf(p.line(), "directive <!%s> in <%s>", short(string(t)), name)
		}
	}
}

func known(e *element) string {
	var names []string
	for n := range e.children {
		names = append(names, "<"+n+">")
	}
	sortStrings(names)
	return strings.Join(names, " ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// boolAttr reads a "true"/"false" attribute; absent is def.
func (p *confParser) boolAttr(attrs map[string]string, name, key string, def bool, line int) (bool, error) {
	v, ok := attrs[key]
	if !ok {
		return def, nil
	}
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, p.errf(line, "<%s %s=%q>: want true or false", name, key, v)
}

// apply takes in one element's attributes.
func (p *confParser) apply(path, name string, a map[string]string, line int) error {
	on := func(def bool) (bool, error) { return p.boolAttr(a, name, "start", def, line) }
	var err error
	ev := &p.c.Events
	switch path {
	case "/head":
		if v, ok := a["version"]; ok && !strings.HasPrefix(v, "2.") {
			p.c.Warnings = append(p.c.Warnings, fmt.Sprintf("confxml.xml line %d: version %q: written for sersync 2.x", line, v))
		}
	case "/head/host":
		// sersync's own address for its socket plugin: nothing to do.
	case "/head/debug":
		p.c.Debug, err = on(false)
	case "/head/fileSystem":
		// xfs="true" works around old kernels' xfs inotify; nothing to do.
		_, err = p.boolAttr(a, name, "xfs", false, line)
	case "/head/filter":
		p.filterOn, err = on(false)
	case "/head/filter/exclude", "/head/sersync/crontab/crontabfilter/exclude":
		e, ok := a["expression"]
		if !ok || e == "" {
			return p.errf(line, "<exclude> without expression")
		}
		if strings.HasPrefix(path, "/head/filter") {
			p.excludes = append(p.excludes, exprAt{e, line})
		} else {
			p.cronExcludes = append(p.cronExcludes, exprAt{e, line})
		}
	case "/head/inotify":
	case "/head/inotify/delete":
		ev.Delete, err = on(ev.Delete)
	case "/head/inotify/createFolder":
		ev.CreateFolder, err = on(ev.CreateFolder)
	case "/head/inotify/createFile":
		ev.CreateFile, err = on(ev.CreateFile)
	case "/head/inotify/closeWrite":
		ev.CloseWrite, err = on(ev.CloseWrite)
	case "/head/inotify/moveFrom":
		ev.MoveFrom, err = on(ev.MoveFrom)
	case "/head/inotify/moveTo":
		ev.MoveTo, err = on(ev.MoveTo)
	case "/head/inotify/attrib":
		ev.Attrib, err = on(ev.Attrib)
	case "/head/inotify/modify":
		ev.Modify, err = on(ev.Modify)
	case "/head/sersync", "/head/sersync/rsync":
	case "/head/sersync/localpath":
		p.localpaths++
		if p.localpaths > 1 {
			return p.errf(line, "a second <localpath>: uvs-sync watches one tree per process (run one per tree)")
		}
		w := a["watch"]
		if w == "" {
			return p.errf(line, "<localpath> without watch")
		}
		p.c.Watch = w
	case "/head/sersync/localpath/remote":
		p.remotes = append(p.remotes, remoteAt{a["ip"], a["name"], line})
	case "/head/sersync/rsync/commonParams":
		f := strings.Fields(a["params"])
		if len(f) == 0 {
			return p.errf(line, "<commonParams> without params")
		}
		for _, x := range f {
			if !strings.HasPrefix(x, "-") {
				return p.errf(line, "<commonParams params=%q>: %q is not an option", a["params"], x)
			}
		}
		p.c.Params = f
	case "/head/sersync/rsync/auth":
		p.authOn, err = on(false)
		p.users, p.passwordFile = a["users"], a["passwordfile"]
	case "/head/sersync/rsync/userDefinedPort":
		p.portOn, err = on(false)
		p.port, p.portLine = a["port"], line
	case "/head/sersync/rsync/timeout":
		p.timeoutOn, err = on(false)
		p.timeout, p.timeoutLine = a["time"], line
	case "/head/sersync/rsync/ssh":
		p.sshOn, err = on(false)
	case "/head/sersync/failLog":
		p.c.FailLog = a["path"]
		if v, ok := a["timeToExecute"]; ok {
			n, perr := strconv.Atoi(v)
			if perr != nil || n <= 0 || n > 7*24*60 {
				return p.errf(line, "<failLog timeToExecute=%q>: want minutes, 1..10080", v)
			}
			p.c.RetryMax = time.Duration(n) * time.Minute
		}
	case "/head/sersync/crontab":
		p.cronOn, err = on(false)
		p.schedule, p.scheduleLine = a["schedule"], line
	case "/head/sersync/crontab/crontabfilter":
		p.cronFilterOn, err = on(false)
	case "/head/sersync/plugin":
		var pon bool
		if pon, err = on(false); err == nil && pon {
			return p.errf(line, "<plugin start=\"true\" name=%q>: plugins are not supported by uvs-sync", a["name"])
		}
	default:
		return p.errf(line, "<%s>: not handled (internal error)", name)
	}
	return err
}

// finish applies what needs the whole file.
func (p *confParser) finish() error {
	c := p.c
	port := 0
	if p.portOn {
		n, err := strconv.Atoi(p.port)
		if err != nil || n <= 0 || n > 65535 {
			return p.errf(p.portLine, "<userDefinedPort port=%q>: want 1..65535", p.port)
		}
		port = n
	}
	if p.timeoutOn {
		n, err := strconv.Atoi(p.timeout)
		if err != nil || n <= 0 {
			return p.errf(p.timeoutLine, "<timeout time=%q>: want seconds > 0", p.timeout)
		}
		c.Timeout = n
	}
	if p.cronOn {
		n, err := strconv.Atoi(p.schedule)
		if err != nil || n <= 0 {
			return p.errf(p.scheduleLine, "<crontab schedule=%q>: want minutes > 0", p.schedule)
		}
		c.Crontab = time.Duration(n) * time.Minute
	}
	if p.filterOn {
		for _, e := range p.excludes {
			re, err := regexp.Compile(e.expr)
			if err != nil {
				return p.errf(e.line, "<exclude expression=%q>: %v", e.expr, err)
			}
			c.Excludes = append(c.Excludes, re)
		}
	}
	if p.cronOn && p.cronFilterOn {
		for _, e := range p.cronExcludes {
			if strings.ContainsAny(e.expr, "\n\r") {
				return p.errf(e.line, "<exclude expression=%q>: a newline", e.expr)
			}
			c.CronExcludes = append(c.CronExcludes, e.expr)
		}
	}
	if p.authOn && p.sshOn {
		// sersync ignores auth over ssh; so do we, but say so.
		c.Warnings = append(c.Warnings, "confxml.xml: <auth start=\"true\"> with <ssh start=\"true\">: rsync daemon auth is not used over ssh")
	}
	for _, r := range p.remotes {
		if err := checkHost(r.ip); err != nil {
			return p.errf(r.line, "<remote ip=%q>: %v", r.ip, err)
		}
		if r.name == "" {
			return p.errf(r.line, "<remote ip=%q> without name (the rsync module, or the path with ssh)", r.ip)
		}
		if !utf8.ValidString(r.name) || strings.ContainsAny(r.name, " \t\n\r") {
			return p.errf(r.line, "<remote name=%q>: white space", r.name)
		}
		t := Target{Host: r.ip, Module: r.name, Port: port, SSH: p.sshOn}
		if p.sshOn {
			if !strings.HasPrefix(r.name, "/") {
				return p.errf(r.line, "<remote name=%q>: with <ssh start=\"true\"> name is the remote directory, an absolute path", r.name)
			}
		} else if p.authOn {
			t.User, t.PasswordFile = p.users, p.passwordFile
			if t.User == "" || t.PasswordFile == "" {
				return p.errf(r.line, "<auth start=\"true\"> needs users and passwordfile")
			}
			if !rsyncUserName(t.User) {
				// The user goes into the destination (user@host::module):
				// an '@', ':' or '/' in it would name another host or path.
				return p.errf(r.line, "<auth users=%q>: an rsync user name is ASCII letters, digits, '.', '_' and '-', not starting with '-'", t.User)
			}
		}
		c.Targets = append(c.Targets, t)
	}
	return nil
}

// rsyncUserName reports whether u is a portable user name (POSIX's
// portable filename characters, not starting with '-'), which every
// destination syntax carries as it is.
func rsyncUserName(u string) bool {
	if u == "" || u[0] == '-' {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
