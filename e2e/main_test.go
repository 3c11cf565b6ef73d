package e2e

import (
	"path/filepath"
	"testing"

	"github.com/uvs-lb/uvs/internal/testbin"
)

// bin is the directory holding the binaries built for this run.
var bin string

func TestMain(m *testing.M) { testbin.Main(m, &bin, "uvs-e2e-bin-", "../cmd/...") }

// binary returns the path of a built command.
func binary(name string) string { return filepath.Join(bin, name) }
