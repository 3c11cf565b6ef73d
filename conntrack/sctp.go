package conntrack

import "time"

// ProtoSCTP is SCTP's protocol number.
const ProtoSCTP uint8 = 132

// SCTP states, with the kernel's numbering (IP_VS_SCTP_S_*, since Linux
// 3.17; the sync protocol carries these numbers).
const (
	SCTPNone State = iota
	SCTPInit1
	SCTPInit
	SCTPCookieSent
	SCTPCookieReplied
	SCTPCookieWait
	SCTPCookie
	SCTPCookieEchoed
	SCTPEstablished
	SCTPShutdownSent
	SCTPShutdownReceived
	SCTPShutdownAckSent
	SCTPRejected
	SCTPClosed
	// NumSCTPStates is the number of SCTP states.
	NumSCTPStates
)

// SCTPEvent is what a packet does to an SCTP connection: the row of the
// state table, chosen from its first chunk (ipvs_sctp_event_t). For SCTP
// the connection table's per-packet flags byte (Track, TrackBatch,
// Create) carries this event instead of TCP flags.
type SCTPEvent = uint8

// SCTP events (IP_VS_SCTP_*).
const (
	SCTPEvData SCTPEvent = iota // DATA, SACK, HEARTBEAT(-ACK), ECNE, CWR, unknown chunks
	SCTPEvInit
	SCTPEvInitAck
	SCTPEvCookieEcho
	SCTPEvCookieAck
	SCTPEvShutdown
	SCTPEvShutdownAck
	SCTPEvShutdownComplete
	SCTPEvError
	SCTPEvAbort
	numSCTPEvents
)

// sctpChunkEvents maps chunk types 0..14 to events (sctp_events); any
// other type is DATA.
var sctpChunkEvents = [15]SCTPEvent{
	0: SCTPEvData, 1: SCTPEvInit, 2: SCTPEvInitAck, 3: SCTPEvData, 4: SCTPEvData,
	5: SCTPEvData, 6: SCTPEvAbort, 7: SCTPEvShutdown, 8: SCTPEvShutdownAck,
	9: SCTPEvError, 10: SCTPEvCookieEcho, 11: SCTPEvCookieAck, 12: SCTPEvData,
	13: SCTPEvData, 14: SCTPEvShutdownComplete,
}

// SCTPEventOf returns the event of a packet whose first chunk has type
// first; next (with hasNext) is the type of the chunk after a COOKIE ECHO
// or COOKIE ACK: an ABORT bundled there makes the packet an ABORT, as
// set_sctp_state (ip_vs_proto_sctp.c) decides.
func SCTPEventOf(first uint8, next uint8, hasNext bool) SCTPEvent {
	const cookieEcho, cookieAck, abort = 10, 11, 6
	if (first == cookieEcho || first == cookieAck) && hasNext && next == abort {
		first = abort
	}
	if int(first) < len(sctpChunkEvents) {
		return sctpChunkEvents[first]
	}
	return SCTPEvData
}

var sctpStateNames = [NumSCTPStates]string{
	"NONE", "INIT1", "INIT", "C-SENT", "C-REPLIED", "C-WAIT", "COOKIE", "C-ECHOED",
	"ESTABLISHED", "S-SENT", "S-RECEIVED", "S-ACK-SENT", "REJECTED", "CLOSED",
}

// sctpStateName is the kernel's sctp_state_name.
func sctpStateName(s State) string {
	if s < NumSCTPStates {
		return sctpStateNames[s]
	}
	return "ERR!"
}

// sctpMaxRTO is IP_VS_SCTP_MAX_RTO, (60 + 1) s.
const sctpMaxRTO = 61 * time.Second

// sctpTimeouts is sctp_timeouts.
var sctpTimeouts = [NumSCTPStates]time.Duration{
	SCTPNone:             2 * time.Second,
	SCTPInit1:            4 * time.Second,
	SCTPInit:             sctpMaxRTO,
	SCTPCookieSent:       sctpMaxRTO,
	SCTPCookieReplied:    sctpMaxRTO,
	SCTPCookieWait:       sctpMaxRTO,
	SCTPCookie:           sctpMaxRTO,
	SCTPCookieEchoed:     sctpMaxRTO,
	SCTPEstablished:      900 * time.Second,
	SCTPShutdownSent:     sctpMaxRTO,
	SCTPShutdownReceived: sctpMaxRTO,
	SCTPShutdownAckSent:  sctpMaxRTO,
	SCTPRejected:         4 * time.Second,
	SCTPClosed:           sctpMaxRTO,
}

// DefaultSCTPTimeout returns the kernel's default timeout for an SCTP
// state (0 for an unknown state).
func DefaultSCTPTimeout(s State) time.Duration {
	if s < NumSCTPStates {
		return sctpTimeouts[s]
	}
	return 0
}

// Short names for the table below, as in the kernel's.
const (
	cNO = SCTPNone
	cI1 = SCTPInit1
	cIN = SCTPInit
	cCS = SCTPCookieSent
	cCR = SCTPCookieReplied
	cCW = SCTPCookieWait
	cCO = SCTPCookie
	cCE = SCTPCookieEchoed
	cES = SCTPEstablished
	cSS = SCTPShutdownSent
	cSR = SCTPShutdownReceived
	cSA = SCTPShutdownAckSent
	cRJ = SCTPRejected
	cCL = SCTPClosed
)

// sctpStates is the kernel's sctp_states: [direction][event][current].
// The directions are those of the TCP table (INPUT, OUTPUT, INPUT_ONLY
// while NOOUTPUT is set).
var sctpStates = [3][numSCTPEvents][NumSCTPStates]State{
	tabInput: {
		//           cNO  cI1  cIN  cCS  cCR  cCW  cCO  cCE  cES  cSS  cSR  cSA  cRJ  cCL
		/* data  */ {cES, cI1, cIN, cCS, cCR, cCW, cCO, cCE, cES, cSS, cSR, cSA, cRJ, cCL},
		/* init  */ {cI1, cIN, cIN, cCS, cCR, cCW, cCO, cCE, cES, cSS, cSR, cSA, cIN, cIN},
		/* i_ack */ {cCW, cCW, cCW, cCS, cCR, cCO, cCO, cCE, cES, cSS, cSR, cSA, cRJ, cCL},
		/* c_e   */ {cCR, cIN, cIN, cCR, cCR, cCW, cCO, cCE, cES, cSS, cSR, cSA, cRJ, cCL},
		/* c_a   */ {cES, cI1, cIN, cCS, cCR, cCW, cCO, cES, cES, cSS, cSR, cSA, cRJ, cCL},
		/* s     */ {cSR, cI1, cIN, cCS, cCR, cCW, cCO, cCE, cSR, cSS, cSR, cSA, cRJ, cCL},
		/* s_a   */ {cCL, cIN, cIN, cCS, cCR, cCW, cCO, cCE, cES, cCL, cSR, cCL, cRJ, cCL},
		/* s_c   */ {cCL, cCL, cCL, cCS, cCR, cCW, cCO, cCE, cES, cSS, cSR, cCL, cRJ, cCL},
		/* err   */ {cCL, cI1, cIN, cCS, cCR, cCW, cCO, cCL, cES, cSS, cSR, cSA, cRJ, cCL},
		/* abort */ {cCL, cCL, cCL, cCL, cCL, cRJ, cCL, cCL, cCL, cCL, cCL, cCL, cCL, cCL},
	},
	tabOutput: {
		/* data  */ {cES, cI1, cIN, cCS, cCR, cCW, cCO, cCE, cES, cSS, cSR, cSA, cRJ, cCL},
		/* init  */ {cCW, cCW, cCW, cCW, cCW, cCW, cCW, cCW, cES, cCW, cCW, cCW, cCW, cCW},
		/* i_ack */ {cCS, cCS, cCS, cCS, cCR, cCW, cCO, cCE, cES, cSS, cSR, cSA, cRJ, cCL},
		/* c_e   */ {cCE, cCE, cCE, cCE, cCE, cCE, cCE, cCE, cES, cSS, cSR, cSA, cRJ, cCL},
		/* c_a   */ {cES, cES, cES, cES, cES, cES, cES, cES, cES, cSS, cSR, cSA, cRJ, cCL},
		/* s     */ {cSS, cSS, cSS, cSS, cSS, cSS, cSS, cSS, cSS, cSS, cSR, cSA, cRJ, cCL},
		/* s_a   */ {cSA, cSA, cSA, cSA, cSA, cCW, cCO, cCE, cES, cSA, cSA, cSA, cRJ, cCL},
		/* s_c   */ {cCL, cI1, cIN, cCS, cCR, cCW, cCO, cCE, cES, cSS, cSR, cSA, cRJ, cCL},
		/* err   */ {cCL, cCL, cCL, cCL, cCL, cCW, cCO, cCE, cES, cSS, cSR, cSA, cRJ, cCL},
		/* abort */ {cCL, cRJ, cCL, cCL, cCL, cCL, cCL, cCL, cCL, cCL, cCL, cCL, cCL, cCL},
	},
	tabInputOnly: {
		/* data  */ {cES, cI1, cIN, cCS, cCR, cES, cCO, cCE, cES, cSS, cSR, cSA, cRJ, cCL},
		/* init  */ {cI1, cIN, cIN, cIN, cIN, cIN, cCO, cCE, cES, cSS, cSR, cSA, cIN, cIN},
		/* i_ack */ {cCE, cCE, cCE, cCE, cCE, cCE, cCO, cCE, cES, cSS, cSR, cSA, cRJ, cCL},
		/* c_e   */ {cES, cES, cES, cES, cES, cES, cCO, cCE, cES, cSS, cSR, cSA, cRJ, cCL},
		/* c_a   */ {cES, cI1, cIN, cES, cES, cCW, cES, cES, cES, cSS, cSR, cSA, cRJ, cCL},
		/* s     */ {cSR, cI1, cIN, cCS, cCR, cCW, cCO, cCE, cSR, cSS, cSR, cSA, cRJ, cCL},
		/* s_a   */ {cCL, cIN, cIN, cCS, cCR, cCW, cCO, cCE, cCL, cCL, cSR, cCL, cRJ, cCL},
		/* s_c   */ {cCL, cCL, cCL, cCL, cCL, cCW, cCO, cCE, cES, cSS, cCL, cCL, cRJ, cCL},
		/* err   */ {cCL, cI1, cIN, cCS, cCR, cCW, cCO, cCE, cES, cSS, cSR, cSA, cRJ, cCL},
		/* abort */ {cCL, cCL, cCL, cCL, cCL, cRJ, cCL, cCL, cCL, cCL, cCL, cCL, cCL, cCL},
	},
}

// sctpTransition is transition for SCTP (set_sctp_state): ev is the
// packet's SCTPEvent; NOOUTPUT selects INPUT_ONLY for input packets and is
// cleared by an output packet; only ESTABLISHED counts as active; the
// timer is re-armed to the new state's timeout. It reports whether the
// controlling template must be marked ASSURED (the connection became
// ESTABLISHED).
func (t *Table) sctpTransition(e *entry, dir Dir, ev SCTPEvent, now int64) (assure bool) {
	off := tabInput
	if e.flags&FlagNoOutput != 0 {
		if dir == DirOut {
			e.flags &^= FlagNoOutput
			off = tabOutput
		} else {
			off = tabInputOnly
		}
	} else if dir == DirOut {
		off = tabOutput
	}
	if ev >= numSCTPEvents {
		ev = SCTPEvData
	}
	cur := e.state
	if cur >= NumSCTPStates {
		cur = SCTPClosed
	}
	ns := sctpStates[off][ev][cur]
	if ns != e.state {
		if d := t.dests.get(e.dest); d != nil {
			switch inactive := e.flags&FlagInactive != 0; {
			case !inactive && ns != SCTPEstablished:
				d.SetActive(false)
				e.flags |= FlagInactive
			case inactive && ns == SCTPEstablished:
				d.SetActive(true)
				e.flags &^= FlagInactive
			}
		}
		assure = ns == SCTPEstablished
	}
	e.state = ns
	setTimer(e, sctpTimeouts[ns], now)
	return assure
}

// sctpHalfOpen reports whether an SCTP connection in state s is one
// nothing has confirmed yet, an association being set up (the SCTP
// counterpart of TCP before ESTABLISHED, pressure.go): the table may
// evict it for a new connection; an ESTABLISHED or closing association is
// never evicted, as a TCP one is not.
func sctpHalfOpen(s State) bool {
	return s < SCTPEstablished
}
