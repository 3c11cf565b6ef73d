package wire

// IP protocol numbers the kernel's sync code knows (IPPROTO_*).
const (
	ProtoTCP  uint8 = 6
	ProtoUDP  uint8 = 17
	ProtoESP  uint8 = 50
	ProtoAH   uint8 = 51
	ProtoSCTP uint8 = 132
)

// TCP connection states in the kernel's numbering (IP_VS_TCP_S_*).
const (
	TCPNone        uint16 = 0
	TCPEstablished uint16 = 1
	TCPSynSent     uint16 = 2
	TCPSynRecv     uint16 = 3
	TCPFinWait     uint16 = 4
	TCPTimeWait    uint16 = 5
	TCPClose       uint16 = 6
	TCPCloseWait   uint16 = 7
	TCPLastAck     uint16 = 8
	TCPListen      uint16 = 9
	TCPSynAck      uint16 = 10
	TCPLast        uint16 = 11
)

// UDP has one state (IP_VS_UDP_S_NORMAL).
const (
	UDPNormal uint16 = 0
	UDPLast   uint16 = 1
)

// SCTP connection states in the current kernel numbering
// (IP_VS_SCTP_S_*; kernels before 3.17 numbered them differently).
const (
	SCTPNone             uint16 = 0
	SCTPInit1            uint16 = 1
	SCTPInit             uint16 = 2
	SCTPCookieSent       uint16 = 3
	SCTPCookieReplied    uint16 = 4
	SCTPCookieWait       uint16 = 5
	SCTPCookie           uint16 = 6
	SCTPCookieEchoed     uint16 = 7
	SCTPEstablished      uint16 = 8
	SCTPShutdownSent     uint16 = 9
	SCTPShutdownReceived uint16 = 10
	SCTPShutdownAckSent  uint16 = 11
	SCTPRejected         uint16 = 12
	SCTPClosed           uint16 = 13
	SCTPLast             uint16 = 14
)

// Persistence template states (IP_VS_CTPL_S_*).
const (
	TemplateNone    uint16 = 0
	TemplateAssured uint16 = 1
	TemplateLast    uint16 = 2
)

// NumStates returns the number of states of a protocol the kernel syncs
// (its pp->num_states) and false for a protocol it does not know, whose
// connections a backup drops.
func NumStates(proto uint8) (uint16, bool) {
	switch proto {
	case ProtoTCP:
		return TCPLast, true
	case ProtoUDP:
		return UDPLast, true
	case ProtoSCTP:
		return SCTPLast, true
	case ProtoAH, ProtoESP:
		return 1, true
	}
	return 0, false
}
