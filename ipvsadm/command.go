// Package ipvsadm speaks ipvsadm 1.31's language: it parses command lines
// and rules files (the -S/-R save format) into Commands, and formats
// listings, byte for byte as ipvsadm prints them. It has no I/O of its own.
package ipvsadm

import "github.com/uvs-lb/uvs/spec"

// CmdKind is an ipvsadm command.
type CmdKind uint8

// Commands, in ipvsadm's order.
const (
	CmdNone        CmdKind = iota
	CmdAddService          // -A
	CmdEditService         // -E
	CmdDelService          // -D
	CmdFlush               // -C
	CmdList                // -L / -l
	CmdAddServer           // -a
	CmdDelServer           // -d
	CmdEditServer          // -e
	CmdSetTimeout          // --set
	CmdStartDaemon         // --start-daemon
	CmdStopDaemon          // --stop-daemon
	CmdRestore             // -R
	CmdSave                // -S
	CmdZero                // -Z
	CmdAddLaddr            // -P / --add-laddr (FULLNAT, DPVS spelling)
	CmdDelLaddr            // -Q / --del-laddr
	CmdGetLaddr            // -G / --get-laddr
	CmdHelp                // -h
	CmdVersion             // -v
)

// Command is one parsed ipvsadm invocation. Service carries the service
// key and, for -A/-E, every service option with ipvsadm's defaults filled
// in; Dest carries the real server for -a/-e/-d with defaults filled in.
type Command struct {
	Kind       CmdKind
	Service    spec.Service
	HasService bool // a virtual-service option (-t/-u/--sctp-service/-f) was given
	Dest       spec.Dest
	Laddr      spec.Dest // -z local address for --add-laddr/--del-laddr (Addr only)

	// --set tcp tcpfin udp (seconds, 0 = unchanged)
	TimeoutTCP, TimeoutTCPFin, TimeoutUDP uint32

	List ListOptions

	// Line is the 1-based line number when the command came from a rules file.
	Line int
}

// ListOptions are the -L/-S modifiers.
type ListOptions struct {
	Numeric        bool // -n
	Connections    bool // -c
	Stats          bool // --stats
	Rate           bool // --rate
	Exact          bool // -X / --exact
	Thresholds     bool // --thresholds
	PersistentConn bool // --persistent-conn
	TunInfo        bool // --tun-info
	NoSort         bool // --nosort
	Timeout        bool // --timeout
	Daemon         bool // --daemon
}
