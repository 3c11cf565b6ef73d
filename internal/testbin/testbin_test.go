package testbin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	if err := Build(dir, "../../cmd/uvs-rs"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "uvs-rs"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&0o111 == 0 {
		t.Errorf("uvs-rs is not executable: %v", fi.Mode())
	}
}

func TestBuildErrors(t *testing.T) {
	if err := Build(t.TempDir()); err == nil {
		t.Error("Build with no package succeeded")
	}
	const bad = "./does-not-exist"
	err := Build(t.TempDir(), bad)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Build(%s) = %v, want an error naming it", bad, err)
	}
}
