package keepalived

import (
	"strings"
	"testing"
)

// TestTrackFile: top-level track_file and vrrp_track_file blocks are read
// and FILE_CHECK resolves to them, taking their weight unless it has its
// own; an unknown name is an error.
func TestTrackFile(t *testing.T) {
	const conf = `track_file TF1 {
    file /run/tf1
    weight -3 reverse
    init_file 7 overwrite
}
vrrp_track_file TF2 {
    file /run/tf2
    init_file
}
track_file NOFILE {
    weight 1
}
virtual_server 10.0.1.100 80 {
    protocol TCP
    real_server 10.0.2.11 80 {
        FILE_CHECK {
            track_file TF1
        }
        FILE_CHECK {
            track_file TF2
            weight 4
        }
        FILE_CHECK {
            track_file NONE
        }
    }
}
`
	cfg, diags, err := Parse("k.conf", strings.NewReader(conf), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantDiag(t, diags, "No file set for track_file NOFILE - removing")
	wantDiag(t, diags, `FILE_CHECK: track_file "NONE" not found`)
	if len(cfg.Ignored) != 0 {
		t.Errorf("ignored: %+v", cfg.Ignored)
	}
	tf1, tf2 := cfg.TrackFiles["TF1"], cfg.TrackFiles["TF2"]
	if tf1 == nil || tf1.Path != "/run/tf1" || tf1.Weight != -3 || !tf1.Reverse || !tf1.Init || tf1.InitValue != 7 || !tf1.InitOverwrite {
		t.Errorf("TF1 %+v", tf1)
	}
	if tf2 == nil || tf2.Path != "/run/tf2" || tf2.Weight != 0 || !tf2.Init || tf2.InitValue != 0 || tf2.InitOverwrite {
		t.Errorf("TF2 %+v", tf2)
	}
	if len(cfg.TrackFiles) != 2 {
		t.Errorf("%d track files", len(cfg.TrackFiles))
	}
	cs := cfg.VirtualServers[0].RealServers[0].Checkers
	if len(cs) != 3 {
		t.Fatalf("%d checkers", len(cs))
	}
	if c := cs[0]; c.File != tf1 || c.FileWeight != -3 || !c.FileReverse {
		t.Errorf("checker 1: %+v", c)
	}
	if c := cs[1]; c.File != tf2 || c.FileWeight != 4 || c.FileReverse {
		t.Errorf("checker 2: %+v", c)
	}
	if cs[2].File != nil {
		t.Errorf("checker 3 resolved to %+v", cs[2].File)
	}
}
