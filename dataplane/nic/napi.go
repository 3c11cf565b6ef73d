package nic

import "errors"

// RxState is what ThreadRx changed on one interface: the values it found,
// so that Restore puts them back. It is JSON-encodable so that a daemon can
// keep it in a state file for a cleanup after a crash.
type RxState struct {
	Ifname string `json:"ifname"`
	// Threaded is /sys/class/net/IFNAME/threaded as found ("0", "1").
	Threaded string `json:"threaded"`
	// RPS maps each receive queue whose rps_cpus ThreadRx cleared
	// ("rx-0") to the mask it had.
	RPS map[string]string `json:"rps,omitempty"`
	// Features lists the ethtool features ThreadRx turned on ("rx-gro").
	Features []string `json:"features,omitempty"`
}

// RxOptions tunes ThreadRx.
type RxOptions struct {
	// Nice, when SetNice is true, is the nice value given to the
	// interface's NAPI threads.
	Nice    int
	SetNice bool
}

// NAPI is one NAPI instance of an interface, from the kernel's netdev
// generic-netlink family.
type NAPI struct {
	ID  uint32
	PID int // its kernel thread (threaded NAPI), 0 if none
}

// ErrNoNAPI is returned by ThreadRx for an interface that has no NAPI
// instance even with GRO on (a VLAN, bond or tunnel device: its frames are
// received by the device below it).
var ErrNoNAPI = errors.New("nic: no NAPI instance")
