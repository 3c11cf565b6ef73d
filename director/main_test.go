package director

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMainCheckKeepalived(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "keepalived.conf")
	conf := `global_defs {
   router_id LVS_A
}
virtual_server 192.168.10.100 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind DR
    protocol TCP
    bogus_keyword 1
    real_server 10.0.0.7 80 {
        weight 3
        TCP_CHECK {
            connect_timeout 3
        }
    }
    real_server 10.0.0.17 80 {
        weight 1
    }
}
`
	if err := os.WriteFile(good, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("virtual_server 1.2.3.4 80 {\n}\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		var o, e bytes.Buffer
		code := Main(args, &o, &e)
		return code, o.String(), e.String()
	}

	code, out, errs := run("--check", "--keepalived", good)
	want := "-A -t 192.168.10.100:80 -s wrr\n" +
		"-a -t 192.168.10.100:80 -r 10.0.0.7:80 -g -w 3\n" +
		"-a -t 192.168.10.100:80 -r 10.0.0.17:80 -g -w 1\n"
	if code != 0 || out != want {
		t.Errorf("--check --keepalived: exit %d, stdout\n%s\nwant exit 0 and\n%s", code, out, want)
	}
	if !strings.Contains(errs, good+":9: Unknown keyword 'bogus_keyword'") || !strings.Contains(errs, "global_defs") {
		t.Errorf("--check --keepalived: stderr %q lacks the unknown keyword's line or the ignored section", errs)
	}

	if code, _, errs := run("--check", "--keepalived", bad); code != 1 || !strings.Contains(errs, bad+":3: Extra '}' found") {
		t.Errorf("extra brace: exit %d, stderr %q; want exit 1 naming line 3", code, errs)
	}
	// Without --check, uvsd runs the file's checkers (e2e/keepalived_test.go);
	// a fatal error stops it before it touches anything.
	if code, _, errs := run("--keepalived", bad); code != 1 || !strings.Contains(errs, bad+":3: Extra '}' found") {
		t.Errorf("--keepalived with an extra brace: exit %d, stderr %q; want exit 1 naming line 3", code, errs)
	}
	if code, _, _ := run("--check", "--keepalived", good, "--rules", good); code != 2 {
		t.Errorf("--keepalived with --rules: exit %d, want 2", code)
	}
}
