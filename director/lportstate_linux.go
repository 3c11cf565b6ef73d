package director

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/uvs-lb/uvs/dataplane/khook"
)

// lportStateFile is where the FULLNAT local port positions of the calling
// thread's network namespace are saved (lportstate.go), next to khook's
// and threadRx's files for the namespace.
func lportStateFile() (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return "", fmt.Errorf("network namespace: %w", err)
	}
	return filepath.Join(khook.DefaultStateDir, "lports-"+strconv.FormatUint(st.Ino, 10)), nil
}

// ownedBySelf refuses a file another user owns.
func ownedBySelf(fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("owned by uid %d, not %d", st.Uid, os.Geteuid())
	}
	return nil
}
