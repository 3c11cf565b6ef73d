// Package sysctls holds the kernel's IPVS sysctls uvsd honours (uvsd
// --sysctl NAME=VALUE): their names, values and defaults. It links only
// the packages whose settings they are (connsync, conntrack), so its
// fuzz target runs in a small binary.
package sysctls

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/uvs-lb/uvs/connsync"
	"github.com/uvs-lb/uvs/conntrack"
)

// Sysctls are the kernel's IPVS sysctls uvsd honours (uvsd --sysctl).
type Sysctls struct {
	// BackupOnly is backup_only: while a backup daemon runs, the
	// director function is off (dataplane.Host.BackupOnly).
	BackupOnly bool
	// Policy is sync_threshold, sync_persist_mode and sync_version.
	Policy connsync.Policy
	// SloppyTCP and SloppySCTP are sloppy_tcp and sloppy_sctp
	// (dataplane.Env.SloppyTCP, SloppySCTP).
	SloppyTCP, SloppySCTP bool
	// Defense is drop_entry, drop_packet, secure_tcp (levels 0-3),
	// amemthresh and am_droprate, driven by the connection table's
	// occupancy instead of free memory (conntrack.Defense).
	Defense conntrack.Defense
}

// Default are the kernel's defaults.
func Default() Sysctls { return Sysctls{Policy: connsync.DefaultPolicy} }

// Set applies one NAME=VALUE; NAME is the sysctl's last part or its full
// name (net.ipv4.vs.NAME, net/ipv4/vs/NAME). A bad name or value is an
// error naming it, and s is unchanged.
func (s *Sysctls) Set(arg string) error {
	name, val, ok := strings.Cut(arg, "=")
	if !ok {
		return fmt.Errorf("sysctl %q: want NAME=VALUE", arg)
	}
	name = strings.TrimSpace(name)
	val = strings.TrimSpace(val)
	short := strings.ReplaceAll(name, "/", ".")
	short = strings.TrimPrefix(short, "net.ipv4.vs.")
	bool01 := func() (bool, error) {
		switch val {
		case "0":
			return false, nil
		case "1":
			return true, nil
		}
		return false, fmt.Errorf("sysctl %s: bad value %q (want 0 or 1)", name, val)
	}
	switch short {
	case "backup_only":
		v, err := bool01()
		if err != nil {
			return err
		}
		s.BackupOnly = v
	case "sloppy_tcp":
		v, err := bool01()
		if err != nil {
			return err
		}
		s.SloppyTCP = v
	case "sloppy_sctp":
		v, err := bool01()
		if err != nil {
			return err
		}
		s.SloppySCTP = v
	case "sync_persist_mode":
		v, err := bool01()
		if err != nil {
			return err
		}
		s.Policy.PersistMode = v
	case "sync_version":
		v, err := bool01()
		if err != nil {
			return err
		}
		s.Policy.Version = 0
		if v {
			s.Policy.Version = 1
		}
	case "sync_threshold":
		// proc_do_sync_threshold: two non-negative numbers, the first
		// below the second unless the second is 0.
		f := strings.Fields(val)
		if len(f) != 2 {
			return fmt.Errorf("sysctl %s: bad value %q (want two numbers, e.g. \"3 50\")", name, val)
		}
		t, err1 := strconv.ParseUint(f[0], 10, 31)
		p, err2 := strconv.ParseUint(f[1], 10, 31)
		if err1 != nil || err2 != nil || (p != 0 && t >= p) {
			return fmt.Errorf("sysctl %s: bad value %q (want THRESHOLD PERIOD, THRESHOLD < PERIOD unless PERIOD is 0)", name, val)
		}
		s.Policy.Threshold, s.Policy.Period = uint32(t), uint32(p)
	case "drop_entry", "drop_packet", "secure_tcp", "amemthresh", "am_droprate":
		n, err := strconv.ParseInt(val, 10, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("sysctl %s: bad value %q (want a non-negative number)", name, val)
		}
		d := s.Defense
		switch short {
		case "drop_entry":
			d.DropEntry = int(n)
		case "drop_packet":
			d.DropPacket = int(n)
		case "secure_tcp":
			d.SecureTCP = int(n)
		case "amemthresh":
			d.AmemThresh = int(n)
		case "am_droprate":
			d.AmDropRate = int(n)
		}
		if (short == "drop_entry" || short == "drop_packet" || short == "secure_tcp") && n > 3 {
			return fmt.Errorf("sysctl %s: bad value %q (want a level 0..3)", name, val)
		}
		s.Defense = d
	default:
		return fmt.Errorf("sysctl %q: unknown (uvsd knows backup_only, sloppy_tcp, sloppy_sctp, sync_threshold, sync_persist_mode, sync_version, drop_entry, drop_packet, secure_tcp, amemthresh, am_droprate)", name)
	}
	return nil
}
