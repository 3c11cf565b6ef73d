package bench

import "golang.org/x/sys/unix"

type syscallStat struct{ ino uint64 }

// statNetNS returns the inode of a namespace file (/run/netns/NAME), which
// /proc/PID/ns/net names as net:[INODE].
func statNetNS(path string, st *syscallStat) error {
	var s unix.Stat_t
	if err := unix.Stat(path, &s); err != nil {
		return err
	}
	st.ino = s.Ino
	return nil
}
