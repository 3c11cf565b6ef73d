// Package wire is the IPVS connection-synchronisation message format
// (kernel net/netfilter/ipvs/ip_vs_sync.c): version 1 messages as the
// kernel sends them by default, version 0 messages as old kernels (and
// sync_version=0) send them, and the uvs option that carries a FULLNAT
// connection's local address and port.
//
// SKELETON: the types below are the contract other packages build on;
// the encoder and decoder are being written.
package wire

// Defaults of the sync daemon (ip_vs_sync.c, ipvsadm).
const (
	DefaultGroup4 = "224.0.0.81" // IP_VS_SYNC_GROUP
	DefaultPort   = 8848         // IP_VS_SYNC_PORT
	DefaultTTL    = 1
	// DefaultMaxLen is the master's default message size for an IPv4
	// group: 1500 − 28.
	DefaultMaxLen = 1472
)

// Connection flags as the kernel puts them on the wire (IP_VS_CONN_F_*).
const (
	FlagFwdMask   uint32 = 0x0007
	FlagSync      uint32 = 0x0020
	FlagHashed    uint32 = 0x0040
	FlagNoOutput  uint32 = 0x0080
	FlagInactive  uint32 = 0x0100
	FlagOutSeq    uint32 = 0x0200
	FlagInSeq     uint32 = 0x0400
	FlagSeqMask   uint32 = 0x0600
	FlagNoCPort   uint32 = 0x0800
	FlagTemplate  uint32 = 0x1000
	FlagOnePacket uint32 = 0x2000
	// FlagBackupMask are the bits a backup accepts from the wire;
	// FlagBackupUpdMask those a later message may change.
	FlagBackupMask    uint32 = 0x1E87
	FlagBackupUpdMask uint32 = 0x0700
)

// Entry is one connection or persistence template in a message. Addresses
// are 16-byte (IPv4 as IPv4-mapped IPv6), ports host order.
type Entry struct {
	IPv6    bool
	Proto   uint8  // IPPROTO_*; 0 for firewall-mark templates
	Flags   uint32 // IP_VS_CONN_F_* (forwarding method in the low 3 bits)
	State   uint16 // protocol state number (kernel numbering)
	CPort   uint16
	VPort   uint16
	DPort   uint16
	FWMark  uint32
	Timeout uint32 // seconds (0 in version 0 messages)
	CAddr   [16]byte
	VAddr   [16]byte
	DAddr   [16]byte
	// HasLocal marks a FULLNAT connection: LAddr:LPort is its local
	// (source-NAT) address and port, carried in a uvs option kernels skip.
	HasLocal bool
	LAddr    [16]byte
	LPort    uint16
}
