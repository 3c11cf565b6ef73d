package contentsync

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

func TestParseConfXMLSeed(t *testing.T) {
	f, err := os.Open("testdata/confxml.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ParseConfXML(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.Watch != "/data/www" {
		t.Errorf("watch %q", c.Watch)
	}
	want := Target{Host: "10.0.0.7", Module: "backup/", User: "rsyncuser", PasswordFile: "/etc/rsync.pas"}
	if len(c.Targets) != 1 || c.Targets[0] != want {
		t.Fatalf("targets %+v, want [%+v]", c.Targets, want)
	}
	if d := c.Targets[0].Dest(); d != "rsync://rsyncuser@10.0.0.7/backup/" {
		t.Errorf("dest %q", d)
	}
	wantEv := Events{Delete: true, CreateFolder: true, CloseWrite: true, MoveFrom: true, MoveTo: true, Attrib: true}
	if c.Events != wantEv {
		t.Errorf("events %+v, want %+v", c.Events, wantEv)
	}
	if strings.Join(c.Params, " ") != "-artuz" || c.Timeout != 0 || c.Crontab != 0 || len(c.Excludes) != 0 {
		t.Errorf("params %q timeout %d crontab %v excludes %v", c.Params, c.Timeout, c.Crontab, c.Excludes)
	}
	if c.RetryMax != time.Hour || c.FailLog != "/tmp/rsync_fail_log.sh" {
		t.Errorf("failLog %q every %v", c.FailLog, c.RetryMax)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], `line 47: plugin "command": plugins are not supported`) {
		t.Errorf("warnings %q", c.Warnings)
	}
}

// TestParseConfXMLSSH is the seed's 基于ssh同步 variant, with the rest of
// the switches on.
func TestParseConfXMLSSH(t *testing.T) {
	doc := `<head version="2.5">
<filter start="true"><exclude expression="^info/"/><exclude expression="\.tmp$"/></filter>
<sersync>
<localpath watch="/data/www">
   <remote ip="10.0.0.7" name="/data/backup"/>
   <remote ip="fd00::17" name="/data/backup"/>
</localpath>
<rsync>
   <commonParams params="-az --checksum"/>
   <auth start="false" users="root" passwordfile="/etc/rsync.pas"/>
   <userDefinedPort start="true" port="2222"/>
   <timeout start="true" time="100"/>
   <ssh start="true"/>
</rsync>
<crontab start="true" schedule="600"><crontabfilter start="true"><exclude expression="*.php"/></crontabfilter></crontab>
</sersync>
</head>`
	c, err := ParseConfXML(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Targets) != 2 {
		t.Fatalf("targets %+v", c.Targets)
	}
	for i, want := range []string{"10.0.0.7:/data/backup/", "[fd00::17]:/data/backup/"} {
		if d := c.Targets[i].Dest(); d != want || !c.Targets[i].SSH || c.Targets[i].Port != 2222 || c.Targets[i].PasswordFile != "" {
			t.Errorf("target %d: %+v dest %q, want %q over ssh port 2222", i, c.Targets[i], d, want)
		}
	}
	if c.Timeout != 100 || c.Crontab != 600*time.Minute || strings.Join(c.CronExcludes, ",") != "*.php" || strings.Join(c.Params, " ") != "-az --checksum" {
		t.Errorf("timeout %d crontab %v %q params %q", c.Timeout, c.Crontab, c.CronExcludes, c.Params)
	}
	if !c.Filtered("info/x.html") || !c.Filtered("a/b.tmp") || c.Filtered("index.html") {
		t.Error("filter expressions not applied")
	}
}

func TestParseConfXMLErrors(t *testing.T) {
	wrap := func(line2 string) string { return "<head>\n" + line2 + "\n</head>\n" }
	sersync := func(inner string) string {
		return wrap("<sersync>\n" + inner + "\n</sersync>")
	}
	for _, tc := range []struct {
		name, doc string
		line      int
		msg       string
	}{
		{"unknown element", wrap("<inotify><create start=\"true\"/></inotify>"), 2, "unknown element <create> in <inotify>"},
		{"unknown top element", "<sersync/>", 1, "unknown element <sersync> at the top"},
		{"unknown attribute", wrap(`<debug start="true" level="9"/>`), 2, `unknown attribute level="9"`},
		{"bad boolean", wrap(`<debug start="yes"/>`), 2, `<debug start="yes">: want true or false`},
		{"seed placeholder ip", sersync("<localpath watch=\"/data/www\">\n<remote ip=\"备份服务器IP\" name=\"backup/\"/>\n</localpath>"), 4, `<remote ip="备份服务器IP">`},
		{"remote without name", sersync("<localpath watch=\"/w\"><remote ip=\"10.0.0.7\"/></localpath>"), 3, "without name"},
		{"ssh relative path", sersync("<localpath watch=\"/w\"><remote ip=\"10.0.0.7\" name=\"backup\"/></localpath>\n<rsync><ssh start=\"true\"/></rsync>"), 3, "absolute path"},
		{"auth without users", sersync("<localpath watch=\"/w\"><remote ip=\"10.0.0.7\" name=\"m\"/></localpath>\n<rsync><auth start=\"true\" users=\"\" passwordfile=\"/p\"/></rsync>"), 3, "needs users and passwordfile"},
		{"second localpath", sersync("<localpath watch=\"/a\"/>\n<localpath watch=\"/b\"/>"), 4, "a second <localpath>"},
		{"duplicate", wrap("<debug start=\"true\"/>\n<debug start=\"false\"/>"), 3, "<debug> again (first at line 2)"},
		{"bad port", sersync("<rsync>\n<userDefinedPort start=\"true\" port=\"87400\"/>\n</rsync>"), 4, "want 1..65535"},
		{"bad timeout", sersync("<rsync><timeout start=\"true\" time=\"-1\"/></rsync>"), 3, "want seconds"},
		{"bad schedule", sersync("<crontab start=\"true\" schedule=\"soon\"/>"), 3, "want minutes"},
		{"bad regex", wrap("<filter start=\"true\">\n<exclude expression=\"(\"/>\n</filter>"), 3, "missing closing )"},
		{"plugin on", sersync(`<plugin start="true" name="command"/>`), 3, "plugins are not supported"},
		{"text", wrap("<debug start=\"true\">on</debug>"), 2, `text "on" in <debug>`},
		{"unclosed", "<head>\n<debug start=\"true\"/>\n", 3, ""},
		{"bad params", sersync("<rsync><commonParams params=\"-a rm\"/></rsync>"), 3, `"rm" is not an option`},
		{"no head", "<?xml version=\"1.0\"?>\n", 2, "no <head>"},
		{"second head", "<head/>\n<head/>", 2, "after </head>"},
		{"encoding", "<?xml version=\"1.0\" encoding=\"EBCDIC\"?>\n<head/>", 1, "EBCDIC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfXML(strings.NewReader(tc.doc))
			var pe *PosError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want a PosError", err, err)
			}
			if pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) {
				t.Fatalf("error %q at line %d, want line %d containing %q", pe.Msg, pe.Line, tc.line, tc.msg)
			}
		})
	}
}

func TestFiltered(t *testing.T) {
	c := DefaultConfig()
	for _, p := range []string{".index.html.swp", "a/.x.swx", "a/.x.swpx", "index.html~", "4913", "a/.#index.html", "#index.html#"} {
		if !c.Filtered(p) {
			t.Errorf("%q not filtered", p)
		}
	}
	for _, p := range []string{"index.html", "a.swp", "swp/x", "a~b", "49130", "x#"} {
		if c.Filtered(p) {
			t.Errorf("%q filtered", p)
		}
	}
}

func FuzzParseConfXML(f *testing.F) {
	seed, err := os.ReadFile("testdata/confxml.xml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`<head><sersync><localpath watch="/w"><remote ip="10.0.0.7" name="www"/></localpath></sersync></head>`))
	f.Add([]byte(`<head><inotify><delete start="maybe"/></inotify></head>`))
	f.Add([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><head><plugin name="x"><a><b/></a></plugin></head>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fuzzwatch.Guard(t, 2*time.Second, func() string { return string(b) })()
		c, err := ParseConfXML(strings.NewReader(string(b)))
		if err != nil {
			var pe *PosError
			if errors.As(err, &pe) && pe.Line < 1 {
				t.Fatalf("error at line %d: %v", pe.Line, err)
			}
			return
		}
		for _, tg := range c.Targets {
			if tg.Host == "" || tg.Module == "" {
				t.Fatalf("accepted an empty target %+v", tg)
			}
			if _, err := ParseTarget(tg.Dest()); err != nil && !tg.SSH {
				t.Fatalf("target %+v: its destination %q does not parse back: %v", tg, tg.Dest(), err)
			}
		}
	})
}
