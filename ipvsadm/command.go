// Package ipvsadm speaks ipvsadm 1.31's language: it parses command lines
// and rules files (the -S/-R save format) into Commands, and formats
// listings, byte for byte as ipvsadm prints them. It has no I/O of its own.
//
// Entry points: Parse/ParseAs (command lines), ParseRules (-R input),
// FormatList, FormatService, FormatConns, FormatTimeout, FormatDaemon and
// FormatSave (output), Usage/UsageFor and Version (-h, -v).
//
// Differences from ipvsadm 1.31, all deliberate:
//   - No DNS or /etc/services: addresses must be numeric (any inet_aton or
//     IPv6 literal form), port names come from a builtin table (ftp ssh
//     smtp domain http https), and listings are always numeric, so -L
//     prints what -Ln prints.
//   - ParseRules skips '#' comment lines (ipvsadm-restore strips them with
//     grep; ipvsadm -R itself would fail on them) and refuses commands that
//     do not change the table (-L, -S, -R, -h, daemons).
//   - FULLNAT in DPVS's spelling: -b/--fullnat on -a/-e/-d, -P/-Q/-G with
//     -z/--laddr; -S writes local addresses as "-P <service> -z <addr>".
//   - "-b ," (no flag names) is reported as an invalid scheduler flag where
//     ipvsadm dereferences a NULL pointer.
//   - A command option after the first one gives ipvsadm's real message,
//     "invalid option `-D'" (exit 2); the "multiple commands specified"
//     text in ipvsadm.c is unreachable with popt.
package ipvsadm

import (
	"net/netip"

	"github.com/uvs-lb/uvs/spec"
)

// CmdKind is an ipvsadm command.
type CmdKind uint8

// Commands, in ipvsadm's order.
const (
	CmdNone         CmdKind = iota
	CmdAddService           // -A
	CmdEditService          // -E
	CmdDelService           // -D
	CmdFlush                // -C
	CmdList                 // -L / -l
	CmdAddServer            // -a
	CmdDelServer            // -d
	CmdEditServer           // -e
	CmdSetTimeout           // --set
	CmdStartDaemon          // --start-daemon
	CmdStopDaemon           // --stop-daemon
	CmdRestore              // -R
	CmdSave                 // -S
	CmdZero                 // -Z
	CmdAddLaddr             // -P / --add-laddr (FULLNAT, DPVS spelling)
	CmdDelLaddr             // -Q / --del-laddr
	CmdGetLaddr             // -G / --get-laddr
	CmdListCheckers         // --list-checkers (uvs: the keepalived checkers of uvsd --keepalived)
	CmdCounters             // --counters (uvs: uvsd's drop and health counters, per worker)
	CmdHelp                 // -h
	CmdVersion              // -v
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

	// Daemon holds the --start-daemon/--stop-daemon state and options.
	Daemon DaemonConfig

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
	JSON           bool // --json (uvs, with --counters)
}

// DaemonConfig is the sync-daemon part of --start-daemon/--stop-daemon.
// Zero values mean "not given" (the kernel's defaults apply).
type DaemonConfig struct {
	State      string     // "master" or "backup"
	McastIfn   string     // --mcast-interface, "eth0" by default for --start-daemon
	SyncID     uint8      // --syncid
	McastGroup netip.Addr // --mcast-group
	McastPort  uint16     // --mcast-port
	McastTTL   uint8      // --mcast-ttl
	SyncMaxLen uint16     // --sync-maxlen
}
