package keepalived

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

// FuzzParse feeds arbitrary text to the reader and the model: it must not
// panic or hang, every diagnostic must name the file and a line, and the
// start-up commands must apply to a fresh table.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.1.1 80 {\n weight 2\n }\n}\n",
		"virtual_server_group G {\n 10.0.0.1-3 80\n fwmark 5 inet6\n 2001:db8::1-a 443\n 10.1.0.0/30 80\n}\nvirtual_server group G {\n real_server 10.0.1.1 {\n }\n}\n",
		"$A= \\\nreal_server 10.0.1.$N 80 { \\\n}\nvirtual_server 10.0.0.1 80 {\n~SEQ(N,1,2,9) $A\n}\n",
		"@x $V=1\n@^x include /nonexistent/*\nvirtual_server fwmark 1 {\n lb_kind TUN type gue port 6080 csum\n real_server ::1 {\n }\n}\n",
		"virtual_server 10.0.0.1 0 {\n sorry_server 10.9.9.9\n sorry_server_inhibit\n quorum 9\n hysteresis 20\n alpha\n real_server 10.0.1.1 80 {\n HTTP_GET {\n url {\n path /\n status_code 200-299 503\n }\n }\n }\n}\n",
		"global_defs {\n@uvs lvs_sync_daemon eth1 inst VI_1 id 5 maxlen 1400 port 8849 ttl 2 group 224.0.0.82\n}\nvrrp_instance VI_1 {\n state MASTER\n interface eth0\n virtual_router_id 51\n priority 150\n advert_int 0.5\n nopreempt\n authentication {\n auth_type PASS\n }\n virtual_ipaddress {\n 10.0.0.1/24 brd 10.0.0.255 dev eth1 scope global label eth1:1 no_track\n x.x.x.90\n 2001:db8::1/129\n }\n virtual_ipaddress_excluded {\n 2001:db8::2\n }\n}\n",
		"vrrp_instance V {\n interface eth0\n virtual_router_id 256\n lvs_sync_daemon_interface eth1\n}\nvrrp_instance V {\n}\nvrrp_instance W {\n virtual_router_id 9\n state EQUAL\n}\nglobal_defs {\n default_interface bond0\n lvs_sync_daemon eth1 W 7 9\n}\n",
		"}\n", "{\n", "\"unterminated {\n", "$X=$X\n$X\n", "~SEQ(I,1,100000000) x\n", "${_RANDOM 5 9} ${_ENV HOME}\n",
	} {
		f.Add(s)
	}
	if files, err := filepath.Glob(filepath.Join(corpusDir, "acassen-samples-*.conf")); err == nil {
		for _, name := range files[:min(len(files), 6)] {
			if b, err := os.ReadFile(name); err == nil {
				f.Add(string(b))
			}
		}
	}
	f.Fuzz(func(t *testing.T, src string) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(src), src) })()
		fsys := fstest.MapFS{"inc.conf": {Data: []byte("virtual_server 10.0.0.9 80 {\n}\n")}}
		cfg, diags, err := Parse("fuzz.conf", strings.NewReader(src), Options{FS: fsys, ConfigID: "x", AlsoID: "uvs"})
		for _, d := range diags {
			if d.Pos.File == "" || d.Pos.Line <= 0 {
				t.Fatalf("diagnostic without position: %+v", d)
			}
		}
		if err != nil {
			return
		}
		for _, vi := range cfg.VRRP {
			if vi.VRID < 1 || vi.VRID > 255 || vi.Priority < 1 || vi.Priority > 255 || vi.Interface == "" || vi.AdvertInt <= 0 {
				t.Fatalf("vrrp_instance kept with bad values: %+v", vi)
			}
			for _, v := range vi.VIPs {
				if !v.Prefix.IsValid() {
					t.Fatalf("invalid VIP in %+v", vi)
				}
			}
		}
		if sd := cfg.SyncDaemon; sd != nil {
			if cfg.Instance(sd.Instance) == nil || sd.SyncID < 0 || sd.SyncID > 255 || sd.Interface == "" {
				t.Fatalf("sync daemon kept with bad values: %+v", sd)
			}
		}
		// Commands is keys × destinations; keep the product small so
		// that a /8 group with thousands of generated real servers does
		// not turn the fuzzer into a memory test.
		work := 0
		for _, vs := range cfg.VirtualServers {
			work += len(cfg.Keys(vs)) * (len(vs.RealServers) + 1)
		}
		if work < 100000 {
			_ = cfg.Commands()
		}
	})
}
