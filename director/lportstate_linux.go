package director

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/uvs-lb/uvs/dataplane/khook"
)

// lportStateFile is where the FULLNAT local port positions of the calling
// thread's network namespace are saved (lportstate.go), next to khook's
// and threadRx's files for the namespace: named by the namespace's inode
// number and its cookie (khook.NetNSCookie), so that a namespace that got
// the inode number of a dead one does not take the dead one's positions.
// ino is the inode number (for removeDeadLportStates).
func lportStateFile() (path string, ino uint64, err error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return "", 0, fmt.Errorf("network namespace: %w", err)
	}
	// A kernel without SO_NETNS_COOKIE (before 5.14) names the file by
	// the inode number alone, as uvsd did before cookies.
	cookie, _ := khook.NetNSCookie()
	return lportStatePath(khook.DefaultStateDir, st.Ino, cookie), st.Ino, nil
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
