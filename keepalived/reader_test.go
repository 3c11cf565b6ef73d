package keepalived

import (
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/uvs-lb/uvs/ipvsadm"
	"github.com/uvs-lb/uvs/spec"
)

func parseString(t *testing.T, src string, opt Options) (*Config, []Diagnostic) {
	t.Helper()
	cfg, diags, err := Parse("test.conf", strings.NewReader(src), opt)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg, diags
}

func hasDiag(diags []Diagnostic, s string) bool {
	for _, d := range diags {
		if strings.Contains(d.String(), s) {
			return true
		}
	}
	return false
}

func TestReaderLines(t *testing.T) {
	src := `! comment
# another
virtual_server 10.0.0.1 80{   ! brace glued, trailing comment
  lb_algo rr # comment
  lb_kind NAT
  protocol TCP
  real_server 10.0.1.1 8080
  {
    weight 3 } 
  real_server 10.0.1.2 8080 { weight 4
  }
  quorum_up "/bin/echo a # b ! c" root
  quorum_down '/bin/x \'a b\' \t' u :g
}
`
	cfg, diags := parseString(t, src, Options{})
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	if len(cfg.VirtualServers) != 1 {
		t.Fatalf("got %d virtual servers", len(cfg.VirtualServers))
	}
	vs := cfg.VirtualServers[0]
	if vs.Scheduler != "rr" || vs.Proto != spec.ProtoTCP || vs.Port != 80 || len(vs.RealServers) != 2 {
		t.Fatalf("vs = %+v", vs)
	}
	if vs.RealServers[0].Weight != 3 || vs.RealServers[1].Weight != 4 {
		t.Errorf("weights %d %d", vs.RealServers[0].Weight, vs.RealServers[1].Weight)
	}
	if vs.QuorumUp == nil || vs.QuorumUp.Cmd != "/bin/echo a # b ! c" || vs.QuorumUp.User != "root" {
		t.Errorf("quorum_up = %+v", vs.QuorumUp)
	}
	if vs.QuorumDown == nil || vs.QuorumDown.Cmd != `/bin/x \'a b\' \t` || vs.QuorumDown.User != "u" || vs.QuorumDown.Group != "g" {
		t.Errorf("quorum_down = %+v", vs.QuorumDown)
	}
}

func TestIncludeRelativeAndGlob(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/keepalived/keepalived.conf": {Data: []byte("global_defs {\n router_id X\n}\ninclude conf.d/*.conf\ninclude missing/*.conf\nincludem nothere.conf\n")},
		"etc/keepalived/conf.d/b.conf":   {Data: []byte("virtual_server 10.0.0.2 80 {\n protocol TCP\n real_server 10.1.0.1 80 {\n }\n}\n")},
		"etc/keepalived/conf.d/a.conf":   {Data: []byte("virtual_server 10.0.0.1 80 {\n protocol TCP\n bogus 1\n real_server 10.1.0.1 80 {\n }\n}\n")},
		"etc/keepalived/conf.d/dir.conf": {Mode: 0o755 | 1<<31},
	}
	cfg, diags, err := Load("/etc/keepalived/keepalived.conf", Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.VirtualServers) != 2 || cfg.VirtualServers[0].Addr.String() != "10.0.0.1" {
		t.Fatalf("include order/contents wrong: %+v", cfg.VirtualServers)
	}
	if cfg.Global.RouterID != "X" {
		t.Errorf("router_id %q", cfg.Global.RouterID)
	}
	if !hasDiag(diags, "/etc/keepalived/conf.d/a.conf:3: Unknown keyword 'bogus'") {
		t.Errorf("unknown keyword in include not reported with its file:line: %v", diags)
	}
	var sev []Severity
	for _, d := range diags {
		if strings.Contains(d.Msg, "No config files matched") {
			sev = append(sev, d.Severity)
		}
	}
	if len(sev) != 2 || sev[0] != SevWarning || sev[1] != SevError {
		t.Errorf("include (warning) / includem (error) not reported: %v", diags)
	}
}

func TestConditionalsAndDefinitions(t *testing.T) {
	src := `$PORT=80
$X=${_HASH}
$RS= \
real_server 10.0.1.$N $PORT { \
  weight $N \
}
@lb1 $SCHED=rr
@^lb1 $SCHED=wrr
virtual_server 10.0.0.1 ${PORT} {
  protocol TCP
  lb_algo $SCHED
  @lb1 weight 7
  @other weight 9
  $X weight 11
  ~SEQ(N, 1, 3) $RS
  notify_up "$UNDEFINED"
}
`
	cfg, diags := parseString(t, src, Options{ConfigID: "lb1"})
	if len(cfg.VirtualServers) != 1 {
		t.Fatalf("%v", diags)
	}
	vs := cfg.VirtualServers[0]
	if vs.Scheduler != "rr" || vs.Weight != 7 || vs.Port != 80 {
		t.Errorf("sched %q weight %d port %d", vs.Scheduler, vs.Weight, vs.Port)
	}
	if len(vs.RealServers) != 3 {
		t.Fatalf("~SEQ gave %d real servers; diags %v", len(vs.RealServers), diags)
	}
	for i, rs := range vs.RealServers {
		if rs.Addr.As4()[3] != byte(i+1) || rs.Weight != int64(i+1) || rs.Port != 80 {
			t.Errorf("rs %d = %s:%d w%d", i, rs.Addr, rs.Port, rs.Weight)
		}
	}
	if !hasDiag(diags, "test.conf:16: Unknown keyword 'notify_up'") {
		t.Logf("diags: %v", diags)
	}
	cfg, _ = parseString(t, src, Options{ConfigID: "lb2"})
	if vs := cfg.VirtualServers[0]; vs.Scheduler != "wrr" || vs.Weight != 1 {
		t.Errorf("other host: sched %q weight %d", vs.Scheduler, vs.Weight)
	}
}

func TestFatalErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"virtual_server 10.0.0.1 80 {\n}\n}\n", "test.conf:3: Extra '}' found"},
		{"global_defs {\n router_id x\nvirtual_server 10.0.0.1 80 {\n}\n", "test.conf:1: Missing '}' at end of configuration block 'global_defs'"},
	} {
		_, _, err := Parse("test.conf", strings.NewReader(tc.src), Options{})
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: err %v, want %q", tc.src, err, tc.want)
		}
	}
}

func TestValueErrors(t *testing.T) {
	src := `virtual_server 10.0.0.1 80 {
  protocol TCP
  lb_algo RR
  lb_kind dr
  persistence_timeout 0
  delay_loop abc
  retry 0
  quorum 0
  real_server 10.0.1.x 80 {
  }
  real_server 10.0.1.1 80 {
    weight -1
    HTTP_GET {
      url {
        digest 123
      }
    }
    TCP_CHECK {
      nb_get_retry 3
      retry 0
    }
  }
}
virtual_server x.x.x.1 80 {
  real_server 10.0.1.1 80 {
  }
}
`
	cfg, diags := parseString(t, src, Options{})
	for _, want := range []string{
		"test.conf:3: Invalid lvs_scheduler 'RR'",
		"test.conf:4: PARSER : unknown [dr] routing method.",
		"test.conf:5: number '0' outside range [1, 2678400]",
		"test.conf:6: delay_loop value 'abc' is invalid",
		"test.conf:7: retry value invalid - 0",
		"test.conf:8: Quorum 0 must be in [1, 4294967295]. Setting to 1.",
		"test.conf:9: Invalid real server ip address/port '10.0.1.x' - skipping",
		"test.conf:12: number '-1' outside range",
		"test.conf:15: digest '123' is not 32 hex digits",
		"test.conf:19: Unknown keyword 'nb_get_retry'",
		"test.conf:24: Invalid virtual server IP address 'x.x.x.1' - skipping",
		"no scheduler set, setting default 'wlc'",
		"no forwarding method set, setting default NAT",
	} {
		if !hasDiag(diags, want) {
			t.Errorf("missing diagnostic %q", want)
		}
	}
	if len(cfg.VirtualServers) != 1 {
		t.Fatalf("virtual servers: %d", len(cfg.VirtualServers))
	}
	vs := cfg.VirtualServers[0]
	if vs.Scheduler != "wlc" || vs.Method.Fwd != spec.FwdMasq || vs.Persistent || vs.Quorum != 1 || vs.DelayLoop != 60*time.Second {
		t.Errorf("vs = %+v", vs)
	}
	rs := vs.RealServers[0]
	if len(rs.Checkers) != 1 || rs.Checkers[0].Kind != "TCP_CHECK" || rs.Checkers[0].Retry != 0 {
		t.Errorf("checkers: HTTP_GET without url must be dropped, TCP_CHECK retry 0 kept: %+v", rs.Checkers)
	}
}

func TestInheritance(t *testing.T) {
	src := `virtual_server 10.0.0.1 80 {
  protocol TCP
  lb_kind DR
  delay_loop 10
  connect_timeout 2.5
  alpha
  inhibit_on_failure
  weight 5
  virtualhost vs.example
  real_server 10.0.1.1 8080 {
    retry 4
    HTTP_GET {
      url {
        path /
      }
    }
    MISC_CHECK {
      misc_path "/bin/true"
    }
    DNS_CHECK {
      alpha off
    }
    SMTP_CHECK {
      host {
        connect_ip 10.0.9.1
      }
      host {
        connect_ip 10.0.9.2
        connect_port 2525
      }
    }
  }
}
`
	cfg, diags := parseString(t, src, Options{})
	vs := cfg.VirtualServers[0]
	rs := vs.RealServers[0]
	if rs.Port != 80 || !hasDiag(diags, "ports don't match - resetting") {
		t.Errorf("DR real server port %d", rs.Port)
	}
	if rs.Weight != 5 || !rs.Alpha || !rs.Inhibit || rs.DelayLoop != 10*time.Second || rs.ConnectTimeout != 2500*time.Millisecond {
		t.Errorf("rs = %+v", rs)
	}
	if len(rs.Checkers) != 5 {
		t.Fatalf("%d checkers", len(rs.Checkers))
	}
	h, m, d, s1, s2 := rs.Checkers[0], rs.Checkers[1], rs.Checkers[2], rs.Checkers[3], rs.Checkers[4]
	if h.Retry != 4 || h.DelayBeforeRetry != 3*time.Second || h.Warmup != 10*time.Second || h.Virtualhost != "vs.example" ||
		!h.Alpha || h.ConnectPort != 8080 || h.URLs[0].StatusCodes[0] != [2]int{200, 299} {
		t.Errorf("HTTP_GET = %+v", h)
	}
	if m.Retry != 4 || m.MiscTimeout != 10*time.Second || m.DelayBeforeRetry != time.Second {
		t.Errorf("MISC_CHECK = %+v", m)
	}
	if d.Alpha || d.DNSType != "SOA" || d.DNSName != "." || d.DelayBeforeRetry != 10*time.Second {
		t.Errorf("DNS_CHECK = %+v", d)
	}
	if s1.ConnectIP.String() != "10.0.9.1" || s1.ConnectPort != 8080 || s2.ConnectPort != 2525 || s1.HeloName != "smtpchecker.keepalived.org" {
		t.Errorf("SMTP host blocks = %+v %+v", s1, s2)
	}
}

// TestStartPool checks §2.5/§2.6: alpha real servers start down (absent,
// or weight 0 with inhibit_on_failure); below quorum the sorry server
// replaces the alive ones.
func TestStartPool(t *testing.T) {
	src := `virtual_server 10.0.0.1 80 {
  protocol TCP
  lb_algo wrr
  quorum 5
  sorry_server 10.9.9.9 8080
  sorry_server_lvs_method DR
  real_server 10.0.1.1 80 {
    weight 2
  }
  real_server 10.0.1.2 80 {
    weight 2
    inhibit_on_failure
  }
  real_server 10.0.1.3 80 {
    alpha
    TCP_CHECK {
    }
  }
  real_server 10.0.1.4 80 {
    alpha
    inhibit_on_failure
    TCP_CHECK {
    }
  }
}
virtual_server fwmark 7 {
  lb_algo sh
  sh-port
  flag-3
  lb_kind FNAT
  laddr_group_name L
  real_server 10.0.2.1 443 {
  }
}
local_address_group L {
  10.5.0.1-2 eth0
}
`
	cfg, diags := parseString(t, src, Options{})
	got := listing(t, cfg.Commands())
	want := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:80 wrr
  -> 10.0.1.2:80                  Masq    0      0          0         
  -> 10.0.1.4:80                  Masq    0      0          0         
  -> 10.9.9.9:80                  Route   1      0          0         
FWM  7 sh (sh-port)
  -> 10.0.2.1:443                 FullNat 1      0          0         
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s\ndiags %v", got, want, diags)
	}
	var laddrs []string
	for _, c := range cfg.Commands() {
		if c.Kind == ipvsadm.CmdAddLaddr {
			laddrs = append(laddrs, c.Laddr.Addr.String())
		}
	}
	if strings.Join(laddrs, ",") != "10.5.0.1,10.5.0.2" {
		t.Errorf("FULLNAT local addresses %v", laddrs)
	}
	if f := cfg.VirtualServers[1].Flags; f != spec.SchedFlag2|spec.SchedFlag3 {
		t.Errorf("flags %#x", f)
	}
}

func TestGlobalCommands(t *testing.T) {
	src := `global_defs {
  lvs_flush
  lvs_timeouts tcp 900 udp 30
  router_id lb1
}
virtual_server 10.0.0.1 53 {
  protocol UDP
  real_server 10.0.1.1 53 {
    DNS_CHECK {
      type aaaa
      name example.org
    }
    DNS_CHECK {
      type BOGUS
    }
  }
}
`
	cfg, diags := parseString(t, src, Options{})
	cmds := cfg.Commands()
	if len(cmds) < 2 || cmds[0].Kind != ipvsadm.CmdFlush || cmds[1].Kind != ipvsadm.CmdSetTimeout ||
		cmds[1].TimeoutTCP != 900 || cmds[1].TimeoutUDP != 30 || cmds[1].TimeoutTCPFin != 0 {
		t.Fatalf("commands %+v", cmds)
	}
	c := cfg.VirtualServers[0].RealServers[0].Checkers
	if c[0].DNSType != "AAAA" || c[0].DNSName != "example.org" || c[0].Retry != 3 || c[1].DNSType != "SOA" {
		t.Errorf("DNS_CHECK %+v %+v", c[0], c[1])
	}
	wantDiag(t, diags, "test.conf:14: DNS_CHECK: unknown type 'BOGUS'")
}

// TestFullNATAcrossFamilies: keepalived keeps only tunnelled real servers
// of the other family; FNAT ones are kept too (DPVS's NAT64), a NAT one
// is still skipped with keepalived's error.
func TestFullNATAcrossFamilies(t *testing.T) {
	src := `virtual_server 2001:db8::4 8080 {
  lb_algo rr
  lb_kind FNAT
  protocol TCP
  laddr_group_name L
  real_server 192.168.88.151 80 {
  }
  real_server 192.168.88.152 80 {
    lb_kind NAT
  }
}
local_address_group L {
  192.168.88.10 eth0
}
`
	cfg, diags := parseString(t, src, Options{})
	got := listing(t, cfg.Commands())
	want := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  [2001:db8::4]:8080 rr
  -> 192.168.88.151:80            FullNat 1      0          0         
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s\ndiags %v", got, want, diags)
	}
	if len(diags) != 1 || !strings.Contains(diags[0].String(), "[192.168.88.152] does not match") {
		t.Errorf("diags %v, want one about the NAT real server", diags)
	}
}

// TestSelfReferentialMultilineDefinition: a multi-line definition whose
// lines use it again (found by FuzzParse: 10 s for 19 bytes) stops at the
// reader's budget with keepalived-style "too many lines", every pass of
// substitution counted.
func TestSelfReferentialMultilineDefinition(t *testing.T) {
	src := "$A=$A\\\n$A\\\n0$A$A\n$A\n"
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := Parse("self.conf", strings.NewReader(src), Options{})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "too many lines") {
		t.Fatalf("err %v, want the expansion budget's error", err)
	}
	// The budget is 64 MiB of counted work (about 600 MiB allocated);
	// before every pass counted, this input allocated some 2.2 GiB.
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<30 {
		t.Fatalf("the reader allocated %d MiB for a 19-byte file", n>>20)
	}
}
