package keepalived

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkParse292 reads the 770 KB DPVS configuration (292 virtual
// servers) and builds its start-up commands.
func BenchmarkParse292(b *testing.B) {
	name := filepath.Join(corpusDir, "dpvs-tools-keepalived-292vs.conf")
	data, err := os.ReadFile(name)
	if err != nil {
		b.Fatalf("corpus missing: %v", err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		cfg, _, err := Parse(name, bytes.NewReader(data), Options{})
		if err != nil {
			b.Fatal(err)
		}
		_ = cfg.Commands()
	}
}
