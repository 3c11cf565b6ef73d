package keepalived

import (
	"fmt"
	"io/fs"
	"net/netip"
	"strings"
	"time"

	"github.com/uvs-lb/uvs/spec"
)

// Options configure Load and Parse.
type Options struct {
	// ConfigID is keepalived's config-id (-i): "@ID" lines are kept only
	// when ID equals it, "@^ID" lines only when it differs. uvsd passes
	// the short host name (keepalived's default); empty matches no "@ID".
	ConfigID string
	// AlsoID is a second config-id, uvs's own: "@ID" lines are kept when
	// ID equals ConfigID or AlsoID, "@^ID" lines only when it equals
	// neither. uvsd passes "uvs", so "@uvs lvs_sync_daemon eth1 VI_1" is
	// read by uvsd and dropped by keepalived (whose config-id is the host
	// name); empty adds nothing.
	AlsoID string
	// Instance is the value of ${_INSTANCE}.
	Instance string
	// FS, when set, is where includes (and Load's file) are read: paths
	// are taken relative to its root, a leading "/" removed. Tests use
	// fstest.MapFS or os.DirFS; nil means the operating system.
	FS fs.FS
	// Getenv answers ${_ENV NAME}; nil gives empty values.
	Getenv func(string) string
}

// Severity of a Diagnostic.
type Severity uint8

// Severities: a Warning is keepalived logging and carrying on with the
// keyword applied or harmlessly ignored; an Error is keepalived rejecting
// a value or a block (the keyword or block is skipped, the rest loads).
const (
	SevWarning Severity = iota
	SevError
)

func (s Severity) String() string {
	if s == SevError {
		return "error"
	}
	return "warning"
}

// Diagnostic is one message about the configuration, with its place.
type Diagnostic struct {
	Pos      Pos
	Severity Severity
	Msg      string
}

func (d Diagnostic) String() string { return d.Pos.String() + ": " + d.Msg }

func diag(p Pos, s Severity, format string, a ...any) Diagnostic {
	return Diagnostic{Pos: p, Severity: s, Msg: fmt.Sprintf(format, a...)}
}

// Error is a fatal configuration error: the file cannot be used at all.
type Error struct {
	Pos   Pos
	Token string
	Msg   string
}

func (e *Error) Error() string {
	s := e.Pos.String() + ": " + e.Msg
	if e.Token != "" && !strings.Contains(e.Msg, "'"+e.Token+"'") {
		s += " '" + e.Token + "'"
	}
	return s
}

// Tri is an optional boolean: unset values are inherited.
type Tri int8

// Tri values.
const (
	Unset Tri = iota
	False
	True
)

// Bool resolves t with a default.
func (t Tri) Bool(def bool) bool {
	if t == Unset {
		return def
	}
	return t == True
}

// NoValue marks an unset Timing field.
const NoValue = -1

// Timing is the inheritable checker timing of a virtual server, real
// server or checker. NoValue means "inherit".
type Timing struct {
	DelayLoop        time.Duration
	ConnectTimeout   time.Duration
	DelayBeforeRetry time.Duration
	Warmup           time.Duration
	Retry            int64
}

func unsetTiming() Timing {
	return Timing{DelayLoop: NoValue, ConnectTimeout: NoValue, DelayBeforeRetry: NoValue, Warmup: NoValue, Retry: NoValue}
}

// Method is a forwarding method with its tunnel options.
type Method struct {
	Fwd     spec.Fwd
	TunType spec.TunType
	TunPort uint16
	TunCsum spec.TunCsum
}

// Script is a notify/quorum/misc command with its optional user and group.
type Script struct {
	Cmd   string
	User  string
	Group string
}

// Section is a top-level block uvs reads but does not act on.
type Section struct {
	Pos  Pos
	Name string
}

// Global is the LVS part of global_defs.
type Global struct {
	RouterID                      string
	TimeoutTCP, TimeoutTCPFin     uint32 // lvs_timeouts, seconds; 0 = unchanged
	TimeoutUDP                    uint32
	LVSFlush                      bool
	LVSFlushOnStop                bool
	LVSSyncDaemon                 []string // raw arguments (Config.SyncDaemon is the parsed form)
	RSInitNotifies                bool
	CheckerLogAllFailures         bool
	NotifyFIFO, LVSNotifyFIFO     string
	NotifyFIFOScript, LVSFIFOScrp string
	// ScriptUser and ScriptGroup are `script_user USER [GROUP]`: who the
	// notify scripts and MISC_CHECK programs without a user of their own
	// run as (empty: uvsd's user).
	ScriptUser, ScriptGroup string
	// DefaultInterface is default_interface: the interface of a
	// vrrp_instance that names none.
	DefaultInterface string
}

// GroupEntry is one line of a virtual_server_group: an address range
// (First..Last, both included, one address when equal) with a port, or a
// firewall mark.
type GroupEntry struct {
	Pos         Pos
	First, Last netip.Addr
	Port        uint16
	FWMark      uint32
	IPv6        bool // fwmark family (inet6)
}

// VirtualServerGroup is a virtual_server_group block.
type VirtualServerGroup struct {
	Pos     Pos
	Name    string
	Entries []GroupEntry
}

// VirtualServer is a virtual_server block, with keepalived's start-up
// defaults and inheritance applied by Load/Parse.
type VirtualServer struct {
	Pos    Pos
	Addr   netip.Addr // address service
	Port   uint16
	FWMark uint32 // fwmark service
	Group  string // "group NAME" service
	IPv6   bool   // family for fwmark services (ip_family inet6)

	Proto      spec.Proto
	Scheduler  string
	Flags      spec.SchedFlags
	Method     Method
	Persistent bool
	Timeout    uint32 // persistence_timeout
	Netmask    uint32 // persistence_granularity as spec.Service.Netmask; 0 = default
	PE         string
	OPS        bool

	Timing
	Alpha      bool
	Omega      bool
	Inhibit    bool
	Quorum     uint32
	Hysteresis uint32
	QuorumUp   *Script
	QuorumDown *Script
	Weight     int64 // default RS weight

	SorryServer        *RealServer
	SorryServerInhibit bool
	Virtualhost        string
	HASuspend          bool

	// LocalAddrs is the FULLNAT local-address pool (DPVS spelling:
	// laddr_group_name naming a local_address_group).
	LocalAddrs     []netip.Addr
	LocalAddrGroup string

	RealServers []*RealServer
}

// RealServer is a real_server block (or the sorry server).
type RealServer struct {
	Pos        Pos
	Addr       netip.Addr
	Port       uint16
	Weight     int64
	Method     Method
	UThreshold uint32
	LThreshold uint32
	Inhibit    bool
	Alpha      bool
	NotifyUp   *Script
	NotifyDown *Script
	Timing
	Virtualhost string
	Checkers    []*Checker

	methodSet        bool
	alphaT, inhibitT Tri
	weightSet        bool
	portWritten      bool // the real_server line has a non-zero port
}

// URL is one url block of HTTP_GET/SSL_GET.
type URL struct {
	Path        string
	Digest      string
	StatusCodes [][2]int // ranges, inclusive; default 200-299
	Virtualhost string
	Regex       string
}

// Checker is one health-checker block of a real server.
type Checker struct {
	Pos  Pos
	Kind string // TCP_CHECK HTTP_GET SSL_GET MISC_CHECK SMTP_CHECK DNS_CHECK UDP_CHECK PING_CHECK FILE_CHECK BFD_CHECK

	ConnectIP   netip.Addr // default: the real server's address
	ConnectPort uint16     // default: the real server's port as written
	BindTo      netip.Addr
	BindPort    uint16
	BindIf      string
	FWMark      uint32
	Timing
	Alpha bool

	// HTTP_GET / SSL_GET
	URLs         []URL
	HTTPProtocol string
	Virtualhost  string
	EnableSNI    bool
	SNIName      string
	FastRecovery bool

	// MISC_CHECK
	MiscPath    *Script
	MiscTimeout time.Duration
	MiscDynamic bool

	// UDP_CHECK
	Payload        string
	RequireReply   bool
	ReplyPattern   string
	MinReplyLength uint32
	MaxReplyLength uint32

	// DNS_CHECK
	DNSType string
	DNSName string

	// SMTP_CHECK
	HeloName string

	// FILE_CHECK
	TrackFile string
	// FileWeight and FileReverse are the checker's `weight W [reverse]`
	// when FileHasWeight; otherwise the track_file block's (set by the
	// parser once File is resolved).
	FileWeight    int64
	FileReverse   bool
	FileHasWeight bool
	// File is the top-level track_file block TrackFile names; nil when
	// there is none.
	File *TrackFile

	// BFD_CHECK
	BFDName string

	alphaT Tri
}

// Config is what Load and Parse return.
type Config struct {
	Global         Global
	Groups         []*VirtualServerGroup
	VirtualServers []*VirtualServer
	// LocalAddressGroups are DPVS local_address_group blocks (FULLNAT).
	LocalAddressGroups map[string][]netip.Addr
	// TrackFiles are the top-level track_file (old name
	// vrrp_track_file) blocks, by name.
	TrackFiles map[string]*TrackFile
	// VRRP are the vrrp_instance blocks (vrrp.go), in file order.
	VRRP []*VRRPInstance
	// SyncDaemon is global_defs' lvs_sync_daemon (nil when absent).
	SyncDaemon *SyncDaemon
	// Ignored lists the top-level sections uvs accepts but does not act
	// on (vrrp_instance, static_ipaddress, …), in file order.
	Ignored []Section
}

// Group returns the named virtual_server_group, or nil.
func (c *Config) Group(name string) *VirtualServerGroup {
	for _, g := range c.Groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// TrackFile is a top-level `track_file NAME { file PATH; weight W
// [reverse]; init_file [VALUE] [overwrite] }` block (keepalived's
// vrrp_tracked_file): a file holding an integer, which FILE_CHECK
// checkers follow.
type TrackFile struct {
	Pos  Pos
	Name string
	// Path is `file`.
	Path string
	// Weight and Reverse are `weight W [reverse]`, the default of the
	// checkers naming the block.
	Weight  int64
	Reverse bool
	// Init is init_file: create the file holding InitValue (default 0)
	// at start if it does not exist, or always with InitOverwrite.
	Init          bool
	InitValue     int64
	InitOverwrite bool
}
