package keepalived

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func parseVRRP(t *testing.T, src string, opt Options) (*Config, []Diagnostic) {
	t.Helper()
	cfg, diags, err := Parse("k.conf", strings.NewReader(src), opt)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg, diags
}

// errorsOf returns the error diagnostics as strings.
func errorsOf(diags []Diagnostic) []string {
	var out []string
	for _, d := range diags {
		if d.Severity == SevError {
			out = append(out, d.String())
		}
	}
	return out
}

// TestVRRPInstance reads every keyword uvs keeps, with keepalived's
// defaults where a keyword is absent.
func TestVRRPInstance(t *testing.T) {
	cfg, diags := parseVRRP(t, `
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.25
    nopreempt
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    track_interface {
        eth1 weight -2
    }
    notify_master "/bin/true master"
    unicast_peer {
        10.0.0.2
    }
    garp_master_delay 1
    virtual_ipaddress {
        192.168.200.16
        192.168.200.17/24 brd 192.168.200.255 dev eth1 scope global label eth1:1 no_track
        192.168.200.18/32 dev eth2
    }
    virtual_ipaddress_excluded {
        2001:db8::1
        2001:db8::2/64 dev eth3
    }
}
vrrp_instance VI_2 {
    interface eth1
    virtual_router_id 52
    virtual_ipaddress {
        fe80::1/64
    }
}
`, Options{})
	if e := errorsOf(diags); len(e) != 0 || len(diags) != 0 {
		t.Errorf("diagnostics: %v", diags)
	}
	want := []*VRRPInstance{{
		Pos: Pos{File: "k.conf", Line: 2}, Name: "VI_1", Interface: "eth0", VRID: 51, Priority: 150,
		State: "MASTER", AdvertInt: 250 * time.Millisecond, NoPreempt: true,
		VIPs: []VRRPAddress{
			{Prefix: netip.MustParsePrefix("192.168.200.16/32")},
			{Prefix: netip.MustParsePrefix("192.168.200.17/24"), Dev: "eth1"},
			{Prefix: netip.MustParsePrefix("192.168.200.18/32"), Dev: "eth2"},
			{Prefix: netip.MustParsePrefix("2001:db8::1/128"), Excluded: true},
			{Prefix: netip.MustParsePrefix("2001:db8::2/64"), Dev: "eth3", Excluded: true},
		},
	}, {
		Pos: Pos{File: "k.conf", Line: 31}, Name: "VI_2", Interface: "eth1", VRID: 52, Priority: 100,
		AdvertInt: time.Second,
		VIPs:      []VRRPAddress{{Prefix: netip.MustParsePrefix("fe80::1/64")}},
	}}
	if !reflect.DeepEqual(cfg.VRRP, want) {
		for i, vi := range cfg.VRRP {
			t.Logf("got[%d] = %+v", i, *vi)
		}
		t.Errorf("VRRP differs")
	}
	for _, s := range cfg.Ignored {
		if s.Name == "vrrp_instance" {
			t.Errorf("vrrp_instance listed as ignored: %+v", cfg.Ignored)
		}
	}
	if cfg.SyncDaemon != nil {
		t.Errorf("SyncDaemon = %+v, want nil", cfg.SyncDaemon)
	}
	if got := cfg.Instance("VI_2"); got != cfg.VRRP[1] {
		t.Errorf("Instance(VI_2) = %v", got)
	}
	if cfg.Instance("VI_3") != nil {
		t.Errorf("Instance(VI_3) found")
	}
}

// TestVRRPBadValues: each bad value is a diagnostic naming its line, with
// keepalived's wording and keepalived's fallback.
func TestVRRPBadValues(t *testing.T) {
	cases := []struct {
		name, body string
		diag       string // "LINE: message" lines; the instance's block starts on line 1
		sev        Severity
		check      func(t *testing.T, cfg *Config)
	}{
		// A bad VRID leaves the instance without one: keepalived then
		// also says it must be set (and its VRRP process exits).
		{"vrid 0", "virtual_router_id 0", "3: (VI): VRID '0' not valid - must be between 1 & 255\n1: (VI) the virtual router id must be set - keepalived will not start; instance not followed", SevError,
			func(t *testing.T, cfg *Config) { wantNoInstance(t, cfg) }},
		{"vrid 256", "virtual_router_id 256", "3: (VI): VRID '256' not valid - must be between 1 & 255\n1: (VI) the virtual router id must be set - keepalived will not start; instance not followed", SevError,
			func(t *testing.T, cfg *Config) { wantNoInstance(t, cfg) }},
		{"vrid text", "virtual_router_id 1x", "3: (VI): VRID '1x' not valid - must be between 1 & 255\n1: (VI) the virtual router id must be set - keepalived will not start; instance not followed", SevError,
			func(t *testing.T, cfg *Config) { wantNoInstance(t, cfg) }},
		{"vrid missing", "", "1: (VI) the virtual router id must be set - keepalived will not start; instance not followed", SevError,
			func(t *testing.T, cfg *Config) { wantNoInstance(t, cfg) }},
		{"priority 0", "virtual_router_id 5\npriority 0", "4: (VI) Priority not valid! must be between 1 & 255. Using default 100", SevError,
			func(t *testing.T, cfg *Config) { wantField(t, cfg.VRRP[0].Priority, 100) }},
		{"priority 256", "virtual_router_id 5\npriority 256", "4: (VI) Priority not valid! must be between 1 & 255. Using default 100", SevError,
			func(t *testing.T, cfg *Config) { wantField(t, cfg.VRRP[0].Priority, 100) }},
		{"priority 255", "virtual_router_id 5\npriority 255", "", 0,
			func(t *testing.T, cfg *Config) { wantField(t, cfg.VRRP[0].Priority, 255) }},
		{"state", "virtual_router_id 5\nstate EQUAL", "4: (VI) unknown state 'EQUAL', defaulting to BACKUP", SevError,
			func(t *testing.T, cfg *Config) { wantField(t, cfg.VRRP[0].State, "BACKUP") }},
		{"state twice", "virtual_router_id 5\nstate MASTER\nstate BACKUP", "5: (VI) state previously set as MASTER - ignoring BACKUP", SevWarning,
			func(t *testing.T, cfg *Config) { wantField(t, cfg.VRRP[0].State, "MASTER") }},
		{"advert_int 0", "virtual_router_id 5\nadvert_int 0", "4: (VI) Advert interval (0) not valid! Must be between 0.01 and 255 - ignoring", SevError,
			func(t *testing.T, cfg *Config) { wantField(t, cfg.VRRP[0].AdvertInt, time.Second) }},
		{"advert_int text", "virtual_router_id 5\nadvert_int x", "4: (VI) Advert interval (x) not valid! Must be between 0.01 and 255 - ignoring", SevError,
			func(t *testing.T, cfg *Config) { wantField(t, cfg.VRRP[0].AdvertInt, time.Second) }},
		{"advert_int 3", "virtual_router_id 5\nadvert_int 3", "", 0,
			func(t *testing.T, cfg *Config) { wantField(t, cfg.VRRP[0].AdvertInt, 3*time.Second) }},
		{"preempt", "virtual_router_id 5\nnopreempt\npreempt", "", 0,
			func(t *testing.T, cfg *Config) { wantField(t, cfg.VRRP[0].NoPreempt, false) }},
		{"bad vip", "virtual_router_id 5\nvirtual_ipaddress {\nx.x.x.90\n10.0.0.1\n}", "5: VRRP parsed invalid IP x.x.x.90. skipping IP...", SevError,
			func(t *testing.T, cfg *Config) { wantVIPs(t, cfg, "10.0.0.1/32") }},
		{"bad prefix", "virtual_router_id 5\nvirtual_ipaddress {\n10.0.0.6/33\n}", "5: Invalid address prefix len 33 for address 10.0.0.6/33 - using 32", SevError,
			func(t *testing.T, cfg *Config) { wantVIPs(t, cfg, "10.0.0.6/32") }},
		{"dev without name", "virtual_router_id 5\nvirtual_ipaddress {\n10.0.0.7 dev\n}", "5: No dev parameter specified for 10.0.0.7", SevError,
			func(t *testing.T, cfg *Config) { wantVIPs(t, cfg, "10.0.0.7/32") }},
		{"vip option", "virtual_router_id 5\nvirtual_ipaddress {\n10.0.0.8 foo\n}", "5: Unknown configuration entry 'foo' for ip address - ignoring", SevError,
			func(t *testing.T, cfg *Config) { wantVIPs(t, cfg, "10.0.0.8/32") }},
		{"vip family", "virtual_router_id 5\nvirtual_ipaddress {\n10.0.0.9\n2001:db8::9/64\n}", "6: (VI): address family must match VRRP instance [2001:db8::9/64] - ignoring", SevError,
			func(t *testing.T, cfg *Config) { wantVIPs(t, cfg, "10.0.0.9/32") }},
		{"no vip", "virtual_router_id 5", "1: (VI) No VIP specified; at least one is sensible", SevWarning,
			func(t *testing.T, cfg *Config) { wantVIPs(t, cfg) }},
		{"unknown keyword", "virtual_router_id 5\nbogus_kw 1", "4: Unknown keyword 'bogus_kw'", SevWarning,
			func(t *testing.T, cfg *Config) { wantField(t, cfg.VRRP[0].VRID, 5) }},
		{"unknown block", "virtual_router_id 5\nbogus_blk {\npriority 7\n}\npriority 9", "4: Unknown keyword 'bogus_blk'", SevWarning,
			func(t *testing.T, cfg *Config) { wantField(t, cfg.VRRP[0].Priority, 9) }},
		{"typo of lvs_sync_daemon_interface", "virtual_router_id 5\nlvs_sync_daemon_inteface eth0", "4: Unknown keyword 'lvs_sync_daemon_inteface'", SevWarning,
			func(t *testing.T, cfg *Config) {
				if cfg.SyncDaemon != nil {
					t.Errorf("SyncDaemon = %+v", cfg.SyncDaemon)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Give the instance a VIP, unless the case is about VIPs, so
			// that only the case's message is produced.
			vip := "\nvirtual_ipaddress {\n10.1.1.1\n}"
			if c.name == "no vip" || strings.Contains(c.body, "virtual_ipaddress") {
				vip = ""
			}
			src := "vrrp_instance VI {\ninterface eth0\n" + c.body + vip + "\n}\n"
			cfg, diags := parseVRRP(t, src, Options{})
			var got []string
			for _, d := range diags {
				got = append(got, strings.TrimPrefix(d.String(), "k.conf:"))
				if c.diag != "" && d.Severity != c.sev {
					t.Errorf("%s: severity %v, want %v", d, d.Severity, c.sev)
				}
			}
			var want []string
			if c.diag != "" {
				want = strings.Split(c.diag, "\n")
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("diagnostics %q, want %q", got, want)
			}
			c.check(t, cfg)
		})
	}
}

func wantNoInstance(t *testing.T, cfg *Config) {
	t.Helper()
	if len(cfg.VRRP) != 0 {
		t.Errorf("instance kept: %+v", cfg.VRRP[0])
	}
}

func wantField[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func wantVIPs(t *testing.T, cfg *Config, prefixes ...string) {
	t.Helper()
	if len(cfg.VRRP) != 1 {
		t.Fatalf("%d instances", len(cfg.VRRP))
	}
	var got []string
	for _, v := range cfg.VRRP[0].VIPs {
		got = append(got, v.Prefix.String())
	}
	if !reflect.DeepEqual(got, prefixes) && (len(got) != 0 || len(prefixes) != 0) {
		t.Errorf("VIPs %v, want %v", got, prefixes)
	}
}

// TestVRRPInstanceBlocks: unnamed, duplicate and interface-less
// instances, and default_interface.
func TestVRRPInstanceBlocks(t *testing.T) {
	cfg, diags := parseVRRP(t, `vrrp_instance {
  virtual_router_id 1
}
vrrp_instance A {
  interface eth0
  virtual_router_id 2
  virtual_ipaddress {
    10.0.0.2
  }
}
vrrp_instance A {
  interface eth1
  virtual_router_id 3
}
vrrp_instance B {
  virtual_router_id 4
  virtual_ipaddress {
    10.0.0.4
  }
}
`, Options{})
	want := []string{
		"k.conf:1: vrrp_instance must have a name",
		"k.conf:11: vrrp instance A already defined",
		"k.conf:15: (B) Unknown interface! - keepalived will not start; instance not followed",
	}
	if got := errorsOf(diags); !reflect.DeepEqual(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
	if len(cfg.VRRP) != 1 || cfg.VRRP[0].Name != "A" || cfg.VRRP[0].VRID != 2 {
		t.Errorf("VRRP = %+v", cfg.VRRP)
	}

	cfg, diags = parseVRRP(t, `vrrp_instance B {
  virtual_router_id 4
  virtual_ipaddress {
    10.0.0.4
  }
}
global_defs {
  default_interface bond0
}
`, Options{})
	if len(diags) != 0 || len(cfg.VRRP) != 1 || cfg.VRRP[0].Interface != "bond0" {
		t.Errorf("default_interface: %v %+v", diags, cfg.VRRP)
	}
}

const syncBase = `vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  virtual_ipaddress {
    10.0.0.1
  }
}
vrrp_instance VI_2 {
  interface eth0
  virtual_router_id 52
  virtual_ipaddress {
    10.0.0.2
  }
}
`

// TestSyncDaemon covers every form of lvs_sync_daemon and its fix-ups.
func TestSyncDaemon(t *testing.T) {
	sd := func(ifn, inst string, id, maxlen, port, ttl int, group string) *SyncDaemon {
		s := &SyncDaemon{Pos: Pos{File: "k.conf", Line: 16}, Interface: ifn, Instance: inst, SyncID: id, MaxLen: maxlen, Port: port, TTL: ttl}
		if group != "" {
			s.Group = netip.MustParseAddr(group)
		}
		return s
	}
	cases := []struct {
		line  string
		want  *SyncDaemon
		diags []string
	}{
		{"lvs_sync_daemon eth1 VI_1", sd("eth1", "VI_1", 51, 0, 0, 0, ""), nil},
		{"lvs_sync_daemon eth1 inst VI_2", sd("eth1", "VI_2", 52, 0, 0, 0, ""), nil},
		{"lvs_sync_daemon eth1 inst VI_1 id 7 maxlen 1400 port 8849 ttl 2 group 224.0.0.82",
			sd("eth1", "VI_1", 7, 1400, 8849, 2, "224.0.0.82"), nil},
		{"lvs_sync_daemon eth1 VI_1 id 0 group ff02::81", sd("eth1", "VI_1", 0, 0, 0, 0, "ff02::81"), nil},
		{"lvs_sync_daemon eth1 VI_1 maxlen 65507 port 65535 ttl 255", sd("eth1", "VI_1", 51, 65507, 65535, 255, ""), nil},
		// The old positional form.
		{"lvs_sync_daemon eth1 VI_2 9", sd("eth1", "VI_2", 9, 0, 0, 0, ""),
			[]string{`warning k.conf:16: Please use keyword "id" before lvs_sync_daemon SYNCID`}},
		{"lvs_sync_daemon eth1 VI_1 id 300", sd("eth1", "VI_1", 51, 0, 0, 0, ""),
			[]string{"error k.conf:16: Invalid syncid (300) - defaulting to vrid"}},
		{"lvs_sync_daemon eth1 VI_1 id", sd("eth1", "VI_1", 51, 0, 0, 0, ""),
			[]string{"error k.conf:16: No value specified for lvs_sync_daemon id, defaulting to vrid"}},
		{"lvs_sync_daemon eth1 VI_1 maxlen 0 port 0 ttl 0 group 10.0.0.1", sd("eth1", "VI_1", 51, 0, 0, 0, ""),
			[]string{
				"error k.conf:16: Invalid lvs_sync_daemon maxlen (0) - ignoring",
				"error k.conf:16: Invalid lvs_sync_daemon port (0) - ignoring",
				"error k.conf:16: Invalid lvs_sync_daemon ttl (0) - ignoring",
				"error k.conf:16: lvs_sync_daemon group address 10.0.0.1 is not multicast - ignoring",
			}},
		{"lvs_sync_daemon eth1 VI_1 maxlen 65508 group x", sd("eth1", "VI_1", 51, 0, 0, 0, ""),
			[]string{
				"error k.conf:16: Invalid lvs_sync_daemon maxlen (65508) - ignoring",
				"error k.conf:16: Invalid lvs_sync_daemon group (x) - ignoring",
			}},
		{"lvs_sync_daemon eth1 VI_1 bogus 3", sd("eth1", "VI_1", 51, 0, 0, 0, ""),
			[]string{
				"error k.conf:16: Invalid syncid (bogus) - defaulting to vrid",
				"error k.conf:16: Unknown option 3 specified for lvs_sync_daemon",
			}},
		{"lvs_sync_daemon eth1 VI_1 id 7 51", sd("eth1", "VI_1", 7, 0, 0, 0, ""),
			[]string{"error k.conf:16: Unknown option 51 specified for lvs_sync_daemon"}},
		{"lvs_sync_daemon eth1 inst VI_1 inst VI_2", sd("eth1", "VI_1", 51, 0, 0, 0, ""),
			[]string{"error k.conf:16: lvs_sync_daemon vrrp instance has already been specified as VI_1 - ignoring"}},
		// Not managed: no instance (keepalived is silent), unknown
		// instance (an error), no interface, a name too long.
		{"lvs_sync_daemon eth1", nil,
			[]string{"warning k.conf:16: lvs_sync_daemon eth1 has no vrrp instance - the sync daemon is not managed"}},
		{"lvs_sync_daemon eth1 VI_X", nil,
			[]string{"error k.conf:16: Unable to find vrrp instance VI_X for lvs_sync_daemon - clearing lvs_syncd config"}},
		{"lvs_sync_daemon", nil, []string{"error k.conf:16: lvs_sync_daemon requires interface"}},
		{"lvs_sync_daemon abcdefghijklmnop VI_1", nil,
			[]string{"error k.conf:16: lvs_sync_daemon interface name 'abcdefghijklmnop' too long - ignoring"}},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			cfg, diags := parseVRRP(t, syncBase+"global_defs {\n"+c.line+"\n}\n", Options{})
			var got []string
			for _, d := range diags {
				got = append(got, d.Severity.String()+" "+d.String())
			}
			if !reflect.DeepEqual(got, c.diags) {
				t.Errorf("diagnostics %q, want %q", got, c.diags)
			}
			if !reflect.DeepEqual(cfg.SyncDaemon, c.want) {
				t.Errorf("SyncDaemon = %+v, want %+v", cfg.SyncDaemon, c.want)
			}
		})
	}
}

// TestSyncDaemonDeprecated: lvs_sync_daemon_interface inside an instance,
// and which of two specifications wins (the first, as in keepalived).
func TestSyncDaemonDeprecated(t *testing.T) {
	src := strings.Replace(syncBase, "virtual_router_id 52", "virtual_router_id 52\n  lvs_sync_daemon_interface eth2", 1)
	cfg, diags := parseVRRP(t, src, Options{})
	want := &SyncDaemon{Pos: Pos{File: "k.conf", Line: 11}, Interface: "eth2", Instance: "VI_2", SyncID: 52}
	if !reflect.DeepEqual(cfg.SyncDaemon, want) {
		t.Errorf("SyncDaemon = %+v, want %+v", cfg.SyncDaemon, want)
	}
	if len(diags) != 1 || diags[0].Severity != SevWarning ||
		diags[0].String() != "k.conf:11: (VI_2) Specifying lvs_sync_daemon_interface against a vrrp is deprecated. Please use global lvs_sync_daemon" {
		t.Errorf("diagnostics %v", diags)
	}

	cfg, diags = parseVRRP(t, "global_defs {\nlvs_sync_daemon eth1 VI_1 id 3\n}\n"+src, Options{})
	if cfg.SyncDaemon == nil || cfg.SyncDaemon.Interface != "eth1" || cfg.SyncDaemon.SyncID != 3 {
		t.Errorf("SyncDaemon = %+v", cfg.SyncDaemon)
	}
	wantDiag(t, diags, "k.conf:14: (VI_2) lvs_sync_daemon_interface has already been specified as eth1 - ignoring")

	cfg, diags = parseVRRP(t, src+"global_defs {\nlvs_sync_daemon eth1 VI_1\n}\n", Options{})
	if cfg.SyncDaemon == nil || cfg.SyncDaemon.Interface != "eth2" {
		t.Errorf("SyncDaemon = %+v", cfg.SyncDaemon)
	}
	wantDiag(t, diags, "k.conf:17: lvs_sync_daemon has already been specified as eth2 VI_2 - ignoring")

	// The instance named by the deprecated form was dropped (no VRID).
	cfg, diags = parseVRRP(t, "vrrp_instance V {\ninterface eth0\nlvs_sync_daemon_interface eth1\n}\n", Options{})
	if cfg.SyncDaemon != nil || len(cfg.VRRP) != 0 {
		t.Errorf("SyncDaemon = %+v VRRP %+v", cfg.SyncDaemon, cfg.VRRP)
	}
	wantDiag(t, diags, "k.conf:3: Unable to find vrrp instance V for lvs_sync_daemon - clearing lvs_syncd config")
}

// TestAlsoID: "@ID" lines are kept for ConfigID or AlsoID, "@^ID" lines
// only when ID is neither; keepalived (ConfigID only) and uvsd (ConfigID
// and AlsoID "uvs") read the same file differently.
func TestAlsoID(t *testing.T) {
	src := syncBase + `global_defs {
@uvs lvs_sync_daemon eth1 inst VI_1
@^uvs router_id keepalived_only
@nodeA lvs_timeouts tcp 100
@^nodeA lvs_timeouts udp 7
}
`
	// uvsd on nodeA.
	cfg, _ := parseVRRP(t, src, Options{ConfigID: "nodeA", AlsoID: "uvs"})
	if cfg.SyncDaemon == nil || cfg.SyncDaemon.Interface != "eth1" || cfg.SyncDaemon.SyncID != 51 {
		t.Errorf("uvsd: SyncDaemon = %+v", cfg.SyncDaemon)
	}
	if g := cfg.Global; g.RouterID != "" || g.TimeoutTCP != 100 || g.TimeoutUDP != 0 {
		t.Errorf("uvsd: global %+v", g)
	}
	// keepalived on nodeA (no AlsoID).
	cfg, _ = parseVRRP(t, src, Options{ConfigID: "nodeA"})
	if cfg.SyncDaemon != nil {
		t.Errorf("keepalived: SyncDaemon = %+v", cfg.SyncDaemon)
	}
	if g := cfg.Global; g.RouterID != "keepalived_only" || g.TimeoutTCP != 100 || g.TimeoutUDP != 0 {
		t.Errorf("keepalived: global %+v", g)
	}
	// uvsd on another node.
	cfg, _ = parseVRRP(t, src, Options{ConfigID: "nodeB", AlsoID: "uvs"})
	if g := cfg.Global; g.RouterID != "" || g.TimeoutTCP != 0 || g.TimeoutUDP != 7 || cfg.SyncDaemon == nil {
		t.Errorf("uvsd on nodeB: global %+v sync %+v", g, cfg.SyncDaemon)
	}
}

// TestHAExample loads testdata/ha/keepalived.conf, the documented recipe
// for one file shared by keepalived --vrrp and uvsd.
func TestHAExample(t *testing.T) {
	const file = "testdata/ha/keepalived.conf"
	for _, c := range []struct {
		name string
		opt  Options
		sync bool
	}{
		{"uvsd", Options{ConfigID: "director_a", AlsoID: "uvs"}, true},
		{"keepalived", Options{ConfigID: "director_a"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, diags, err := Load(file, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(diags) != 0 {
				t.Errorf("diagnostics: %v", diags)
			}
			if len(cfg.VRRP) != 1 || cfg.VRRP[0].VRID != 51 || cfg.VRRP[0].VIPs[0].Prefix.String() != "192.168.0.239/24" ||
				cfg.VRRP[0].VIPs[0].Dev != "eth0" {
				t.Errorf("VRRP = %+v", cfg.VRRP)
			}
			if (cfg.SyncDaemon != nil) != c.sync {
				t.Fatalf("SyncDaemon = %+v", cfg.SyncDaemon)
			}
			if c.sync {
				want := &SyncDaemon{Pos: Pos{File: file, Line: 17}, Interface: "eth1", Instance: "VI_1", SyncID: 51}
				if !reflect.DeepEqual(cfg.SyncDaemon, want) {
					t.Errorf("SyncDaemon = %+v, want %+v", cfg.SyncDaemon, want)
				}
			}
			if len(cfg.VirtualServers) != 1 {
				t.Errorf("%d virtual servers", len(cfg.VirtualServers))
			}
		})
	}
	// The recipe's claim about keepalived, checked by reading the file:
	// no bare lvs_sync_daemon line (keepalived would read it).
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "lvs_sync_daemon") {
			t.Errorf("%s:%d: lvs_sync_daemon without @uvs", file, i+1)
		}
	}
}

// TestVRRPSummary fixes the lines uvsd --check prints.
func TestVRRPSummary(t *testing.T) {
	cfg, _ := parseVRRP(t, `global_defs {
  lvs_sync_daemon eth1 inst VI_1 maxlen 1400 group 224.0.0.82
}
vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 51
  nopreempt
  advert_int 0.5
  virtual_ipaddress {
    192.168.200.16
    192.168.200.17/24 dev eth1
  }
  virtual_ipaddress_excluded {
    10.0.0.1
  }
}
`, Options{})
	want := []string{
		"vrrp_instance VI_1: interface eth0, virtual_router_id 51, priority 100, state MASTER, advert_int 500ms, nopreempt, virtual_ipaddress 192.168.200.16/32 192.168.200.17/24 dev eth1, excluded 10.0.0.1/32",
		"lvs_sync_daemon eth1 inst VI_1 id 51 (maxlen 1400, group 224.0.0.82)",
	}
	if got := cfg.VRRPSummary(); !reflect.DeepEqual(got, want) {
		t.Errorf("VRRPSummary:\n%q\nwant\n%q", got, want)
	}
}

// TestCorpusVRRP: the corpus's vrrp_instances are read, and the only
// VRRP error diagnostics are those keepalived 2.2.7 itself reports on the
// same files (keepalived --vrrp -t, run by hand: pq-issue876's "state
// EQUAL" and pq-issue1552's placeholder VIP).
func TestCorpusVRRP(t *testing.T) {
	wantInstances := map[string]int{
		"acassen-etc-keepalived.conf":           1,
		"acassen-samples-SSL_GET.conf":          1,
		"acassen-samples-sample.conf":           1,
		"acassen-samples-vrrp.lvs_syncd.conf":   3,
		"angeloyang-magic-lvs.conf":             1,
		"dpvs-containerized.conf":               1,
		"hitto-hub-keepalived-lb.conf":          1,
		"pq-1756-file-check-conditionals.conf":  2,
		"pq-ASAP-keepalived.conf":               2,
		"pq-issue1386-nested-defs-udp-ops.conf": 1,
		"pq-issue1552-placeholder-addrs.conf":   1,
		"pq-issue713-ipv6-vs-ipv4-rs.conf":      1,
		"pq-issue850-lvs_syncd.conf":            1,
		"pq-issue876-ipv6-dr.conf":              2,
		"pq-sorry_server.conf":                  1,
		"qimanchen-interview_plan-lvs.conf":     1,
		"snemarch-dns-doodle.conf":              1,
		"zhangzuoqiang-DevOps-lvs.conf":         1,
	}
	wantErrors := map[string][]string{
		"pq-issue876-ipv6-dr.conf": {
			"pq-issue876-ipv6-dr.conf:23: (VI_GATEWAY) unknown state 'EQUAL', defaulting to BACKUP",
			"pq-issue876-ipv6-dr.conf:37: (VI_1) unknown state 'EQUAL', defaulting to BACKUP",
		},
		"pq-issue1552-placeholder-addrs.conf": {
			"pq-issue1552-placeholder-addrs.conf:21: VRRP parsed invalid IP x.x.x.90. skipping IP...",
		},
	}
	total, vips := 0, 0
	for _, f := range corpusFiles(t) {
		base := filepath.Base(f)
		cfg, diags, err := Load(f, Options{})
		if err != nil {
			t.Errorf("%s: %v", base, err)
			continue
		}
		if len(cfg.VRRP) != wantInstances[base] {
			t.Errorf("%s: %d vrrp_instances, want %d", base, len(cfg.VRRP), wantInstances[base])
		}
		total += len(cfg.VRRP)
		for _, vi := range cfg.VRRP {
			vips += len(vi.VIPs)
			if vi.VRID < 1 || vi.VRID > 255 || vi.Interface == "" || vi.Priority < 1 || vi.Priority > 255 {
				t.Errorf("%s: %+v", base, vi)
			}
		}
		var got []string
		for _, e := range errorsOf(diags) {
			if vrrpMessage(e) {
				got = append(got, strings.TrimPrefix(e, filepath.Dir(f)+"/"))
			}
		}
		if !reflect.DeepEqual(got, wantErrors[base]) {
			t.Errorf("%s: VRRP errors %q, want %q", base, got, wantErrors[base])
		}
	}
	if total != 23 {
		t.Errorf("%d vrrp_instances in the corpus, want 23", total)
	}
	t.Logf("corpus: %d vrrp_instances, %d virtual addresses", total, vips)

	cfg, _ := loadCorpus(t, "acassen-samples-vrrp.lvs_syncd.conf")
	want := &SyncDaemon{Pos: Pos{File: filepath.Join(corpusDir, "acassen-samples-vrrp.lvs_syncd.conf"), Line: 12},
		Interface: "eth1", Instance: "VI_1", SyncID: 51}
	if !reflect.DeepEqual(cfg.SyncDaemon, want) {
		t.Errorf("lvs_syncd sample: SyncDaemon = %+v", cfg.SyncDaemon)
	}
	cfg, _ = loadCorpus(t, "snemarch-dns-doodle.conf")
	if v := cfg.VRRP[0].VIPs; len(v) != 1 || v[0].Dev != "eth0.53" {
		t.Errorf("snemarch: VIPs %+v", v)
	}
}

// vrrpMessage reports whether a diagnostic comes from the VRRP part of
// the parser (vrrp.go's messages).
func vrrpMessage(s string) bool {
	for _, m := range []string{"VRID", "Priority not valid", "unknown state", "Advert interval", "VRRP parsed",
		"prefix len", "for ip address", "No dev parameter", "address family must match", "lvs_sync_daemon",
		"lvs_syncd", "virtual router id", "Unknown interface", "vrrp instance", "vrrp_instance", "syncid"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
