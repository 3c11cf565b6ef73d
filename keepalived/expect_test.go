package keepalived

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

func loadCorpus(t *testing.T, name string) (*Config, []Diagnostic) {
	t.Helper()
	corpusFiles(t)
	cfg, diags, err := Load(filepath.Join(corpusDir, name), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, diags
}

func wantDiag(t *testing.T, diags []Diagnostic, s string) {
	t.Helper()
	if !hasDiag(diags, s) {
		t.Errorf("no diagnostic containing %q in %v", s, diags)
	}
}

// TestCorpusExpectations checks ha-reference.md §8.3 file by file.
func TestCorpusExpectations(t *testing.T) {
	t.Run("virtual_server_group", func(t *testing.T) {
		cfg, _ := loadCorpus(t, "acassen-samples-virtual_server_group.conf")
		vs := cfg.VirtualServers[0]
		if keys := cfg.Keys(vs); len(keys) != 13 {
			t.Errorf("%d services, want 13", len(keys))
		}
		for _, rs := range vs.RealServers {
			if len(rs.Checkers) != 1 || rs.Checkers[0].Kind != "HTTP_GET" {
				t.Errorf("one HTTP_GET per real server: %+v", rs.Checkers)
			}
		}
	})
	t.Run("fwmark", func(t *testing.T) {
		cfg, diags := loadCorpus(t, "acassen-samples-fwmark.conf")
		wantDiag(t, diags, "acassen-samples-fwmark.conf:8: Warning: Virtual server FWM 1: protocol specified for fwmark - protocol will be ignored")
		vs := cfg.VirtualServers[0]
		for _, rs := range vs.RealServers {
			if rs.Port != 0 || rs.Checkers[0].ConnectPort != 80 {
				t.Errorf("rs port %d checker port %d", rs.Port, rs.Checkers[0].ConnectPort)
			}
		}
	})
	t.Run("angeloyang", func(t *testing.T) {
		cfg, diags := loadCorpus(t, "angeloyang-magic-lvs.conf")
		wantDiag(t, diags, "angeloyang-magic-lvs.conf:11: Unknown keyword 'lvs_id'")
		wantDiag(t, diags, "angeloyang-magic-lvs.conf:38: PARSER : unknown [dr] routing method.")
		vs := cfg.VirtualServers[0]
		if vs.Method.Fwd != spec.FwdMasq || vs.SorryServer == nil || vs.SorryServer.Addr.String() != "192.168.1.130" || vs.SorryServer.Port != 1521 {
			t.Errorf("vs = %+v sorry %+v", vs, vs.SorryServer)
		}
	})
	t.Run("zhdnf", func(t *testing.T) {
		cfg, diags := loadCorpus(t, "zhdnf-python_script-lvs.conf")
		wantDiag(t, diags, ":6: Unknown keyword 'nat_mask'")
		wantDiag(t, diags, ":7: number '0' outside range [1, 2678400]")
		wantDiag(t, diags, ":25: Unknown keyword 'weigth'")
		if len(cfg.VirtualServers) != 2 || cfg.VirtualServers[0].Persistent || cfg.VirtualServers[1].Proto != spec.ProtoUDP {
			t.Errorf("services %+v", cfg.VirtualServers)
		}
	})
	t.Run("zhangzuoqiang", func(t *testing.T) {
		cfg, diags := loadCorpus(t, "zhangzuoqiang-DevOps-lvs.conf")
		wantDiag(t, diags, ":35: Unknown keyword 'nb_get_retry'")
		vs := cfg.VirtualServers[0]
		if vs.Method.Fwd != spec.FwdRoute || vs.Scheduler != "wrr" || vs.Timeout != 60 {
			t.Errorf("vs = %+v", vs)
		}
	})
	t.Run("snemarch", func(t *testing.T) {
		cfg, diags := loadCorpus(t, "snemarch-dns-doodle.conf")
		wantDiag(t, diags, ":28: Quorum 0 must be in [1, 4294967295]. Setting to 1.")
		vs := cfg.VirtualServers[0]
		if vs.Quorum != 1 || vs.Port != 53 || vs.Proto != spec.ProtoUDP || cfg.Global.TimeoutUDP != 15 {
			t.Errorf("vs = %+v global %+v", vs, cfg.Global)
		}
		if c := vs.RealServers[0].Checkers[0]; c.Kind != "MISC_CHECK" || c.MiscTimeout != time.Second {
			t.Errorf("checker %+v", c)
		}
	})
	t.Run("placeholder", func(t *testing.T) {
		cfg, diags := loadCorpus(t, "pq-issue1552-placeholder-addrs.conf")
		wantDiag(t, diags, ":24: Invalid virtual server IP address 'x.x.x.90' - skipping")
		if len(cfg.VirtualServers) != 0 {
			t.Errorf("%d virtual servers", len(cfg.VirtualServers))
		}
	})
	t.Run("ipv6-dr", func(t *testing.T) {
		cfg, _ := loadCorpus(t, "pq-issue876-ipv6-dr.conf")
		vs := cfg.VirtualServers[0]
		if !vs.Addr.Is6() || vs.Method.Fwd != spec.FwdRoute || vs.Scheduler != "sh" || !vs.Persistent {
			t.Errorf("vs = %+v", vs)
		}
	})
	t.Run("multiline-seq", func(t *testing.T) {
		cfg, _ := loadCorpus(t, "pq-issue1502-multiline-seq.conf")
		var n []int
		for _, vs := range cfg.VirtualServers {
			n = append(n, len(vs.RealServers))
			for _, rs := range vs.RealServers {
				c := rs.Checkers[0]
				if c.Kind != "SSL_GET" || !c.EnableSNI || c.URLs[0].Path != "/Diagnostic.svc/KeepAlive?check=db" {
					t.Errorf("checker %+v", c)
				}
			}
		}
		if len(n) != 3 || n[0] != 3 || n[1] != 3 || n[2] != 2 {
			t.Errorf("real servers per VS %v", n)
		}
	})
	t.Run("nested-defs-ops", func(t *testing.T) {
		cfg, _ := loadCorpus(t, "pq-issue1386-nested-defs-udp-ops.conf")
		vs := cfg.VirtualServers[0]
		if !vs.OPS || vs.Proto != spec.ProtoUDP || len(vs.RealServers) != 8 {
			t.Errorf("vs = %+v", vs)
		}
		if m := vs.RealServers[0].Checkers[0].MiscPath; m == nil || m.User != "quentin" || !strings.HasSuffix(m.Cmd, "192.168.0.14 515") {
			t.Errorf("misc_path %+v", m)
		}
	})
	t.Run("conditionals", func(t *testing.T) {
		cfg, _ := loadCorpus(t, "pq-1756-file-check-conditionals.conf")
		rs := cfg.VirtualServers[0].RealServers[2]
		if rs.Weight != 5 || len(rs.Checkers) != 2 {
			t.Errorf("${_HASH}-commented lines were read: weight %d, %d checkers", rs.Weight, len(rs.Checkers))
		}
		if c := cfg.VirtualServers[0].RealServers[0].Checkers[1]; c.TrackFile != "TF_2" || c.FileWeight != 20 || !c.FileReverse {
			t.Errorf("FILE_CHECK %+v", c)
		}
	})
	t.Run("include-absent", func(t *testing.T) {
		cfg, diags := loadCorpus(t, "pq-ASAP-keepalived.conf")
		wantDiag(t, diags, "No config files matched '/etc/keepalived/hosts/*.conf'")
		if len(cfg.VirtualServers) != 0 {
			t.Errorf("%d virtual servers", len(cfg.VirtualServers))
		}
		for _, d := range diags {
			if d.Severity == SevError {
				t.Errorf("plain include of nothing must not be an error: %v", d)
			}
		}
	})
	t.Run("dpvs", func(t *testing.T) {
		cfg, _ := loadCorpus(t, "dpvs-containerized.conf")
		vs := cfg.VirtualServers[0]
		if vs.Method.Fwd != spec.FwdFullNAT || len(vs.LocalAddrs) != 2 {
			t.Errorf("vs = %+v", vs)
		}
		big, _ := loadCorpus(t, "dpvs-tools-keepalived-292vs.conf")
		if len(big.VirtualServers) != 292 {
			t.Errorf("%d virtual servers, want 292", len(big.VirtualServers))
		}
	})
	t.Run("ipv6-vs-ipv4-rs", func(t *testing.T) {
		cfg, diags := loadCorpus(t, "pq-issue713-ipv6-vs-ipv4-rs.conf")
		wantDiag(t, diags, "has no real servers - ignoring")
		if len(cfg.VirtualServers) != 0 {
			t.Errorf("%d virtual servers", len(cfg.VirtualServers))
		}
	})
}
