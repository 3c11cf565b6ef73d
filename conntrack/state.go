package conntrack

import "time"

// State is a connection's protocol state. For TCP it is one of the IPVS TCP
// states (ip_vs_proto_tcp.c); UDP and other protocols have the single state
// StateNormal; templates are StateNone or StateAssured.
type State uint8

// TCP states, with the kernel's numbering.
const (
	StateNone State = iota
	StateEstablished
	StateSynSent
	StateSynRecv
	StateFinWait
	StateTimeWait
	StateClose
	StateCloseWait
	StateLastAck
	StateListen
	StateSynAck
	// NumTCPStates is the number of TCP states.
	NumTCPStates
)

// Non-TCP states.
const (
	StateNormal  State = 0 // UDP (IP_VS_UDP_S_NORMAL), printed "UDP"
	StateAssured State = 1 // template confirmed by a reply / ESTABLISHED
)

// Protocol numbers the table knows.
const (
	ProtoIP  uint8 = 0 // fwmark templates
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// TCP header flag bits (byte 13 of the TCP header).
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPAck uint8 = 0x10
)

var tcpStateNames = [NumTCPStates]string{
	"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK",
}

// StateName returns the state as ipvsadm -Lnc prints it: a TCP state name,
// "UDP" for UDP, "NONE"/"ASSURED" for templates.
func StateName(proto uint8, template bool, s State) string {
	switch {
	case template:
		if s == StateAssured {
			return "ASSURED"
		}
		return "NONE"
	case proto == ProtoTCP:
		if s < NumTCPStates {
			return tcpStateNames[s]
		}
		return "ERR!"
	case proto == ProtoUDP:
		return "UDP"
	case proto == ProtoSCTP:
		return sctpStateName(s) // sctp.go
	}
	return "NONE"
}

// ProtoName returns the protocol as ipvsadm prints it.
func ProtoName(proto uint8) string {
	switch proto {
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case 132:
		return "SCTP"
	case ProtoIP:
		return "IP"
	}
	return "IP_?"
}

// tcpActive reports whether a TCP state counts in the destination's active
// connections (ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK).
func tcpActive(s State) bool {
	return s == StateEstablished || s == StateSynSent || s == StateSynRecv || s == StateSynAck
}

// Default timeouts (ip_vs_proto_tcp.c tcp_timeouts, ip_vs_proto_udp.c).
var defaultTCPTimeouts = [NumTCPStates]time.Duration{
	StateNone:        2 * time.Second,
	StateEstablished: 900 * time.Second,
	StateSynSent:     120 * time.Second,
	StateSynRecv:     60 * time.Second,
	StateFinWait:     120 * time.Second,
	StateTimeWait:    120 * time.Second,
	StateClose:       10 * time.Second,
	StateCloseWait:   60 * time.Second,
	StateLastAck:     30 * time.Second,
	StateListen:      120 * time.Second,
	StateSynAck:      120 * time.Second,
}

// DefaultTCPTimeout returns the kernel's default timeout for a TCP state.
func DefaultTCPTimeout(s State) time.Duration {
	if s < NumTCPStates {
		return defaultTCPTimeouts[s]
	}
	return 0
}

// Other fixed timeouts.
const (
	DefaultUDPTimeout  = 300 * time.Second
	InitialTimeout     = 3 * time.Second  // a new conn before its first transition
	TemplatePostponeTO = 60 * time.Second // expiry of a template still controlling conns
)

// Directions of the TCP state table (tcp_state_off).
const (
	tabInput = iota
	tabOutput
	tabInputOnly
)

// tcpEvent maps TCP flags to the state-table row as the kernel's
// tcp_state_idx does: rst ? 3 : syn ? 0 : fin ? 1 : ack ? 2 : -1 (none).
func tcpEvent(flags uint8) int {
	switch {
	case flags&TCPRst != 0:
		return 3
	case flags&TCPSyn != 0:
		return 0
	case flags&TCPFin != 0:
		return 1
	case flags&TCPAck != 0:
		return 2
	}
	return -1
}

// Short names for the tables below.
const (
	sNO = StateNone
	sES = StateEstablished
	sSS = StateSynSent
	sSR = StateSynRecv
	sFW = StateFinWait
	sTW = StateTimeWait
	sCL = StateClose
	sCW = StateCloseWait
	sLA = StateLastAck
	sLI = StateListen
	sSA = StateSynAck
)

// tcpStates is the normal table (tcp_states): [direction][event][current].
var tcpStates = [3][4][NumTCPStates]State{
	tabInput: {
		/*syn*/ {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
		/*fin*/ {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW},
		/*ack*/ {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		/*rst*/ {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR},
	},
	tabOutput: {
		/*syn*/ {sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR},
		/*fin*/ {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW},
		/*ack*/ {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES},
		/*rst*/ {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL},
	},
	tabInputOnly: {
		/*syn*/ {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
		/*fin*/ {sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW},
		/*ack*/ {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		/*rst*/ {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
	},
}

// tcpStatesDOS is the secure_tcp table (tcp_states_dos).
var tcpStatesDOS = [3][4][NumTCPStates]State{
	tabInput: {
		/*syn*/ {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSA},
		/*fin*/ {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sSA},
		/*ack*/ {sES, sES, sSS, sSR, sFW, sTW, sCL, sCW, sCL, sLI, sSA},
		/*rst*/ {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
	},
	tabOutput: {
		/*syn*/ {sSS, sES, sSS, sSA, sSS, sSS, sSS, sSS, sSS, sLI, sSA},
		/*fin*/ {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW},
		/*ack*/ {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES},
		/*rst*/ {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL},
	},
	tabInputOnly: {
		/*syn*/ {sSA, sES, sES, sSR, sSA, sSA, sSA, sSA, sSA, sSA, sSA},
		/*fin*/ {sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW},
		/*ack*/ {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		/*rst*/ {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
	},
}
