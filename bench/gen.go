package bench

import "time"

// GenConfig configures one generator run.
type GenConfig struct {
	// NetNS is the namespace holding Iface ("" = the caller's).
	NetNS string
	Iface string
	Flow  FlowSpec
	// Rate is the offered rate in frames per second; 0 sends as fast as
	// the path accepts.
	Rate float64
	// Duration and Count bound the run; the first reached ends it (0 =
	// no bound of that kind, but one of them must be set).
	Duration time.Duration
	Count    uint64
	// Batch is the number of frames per sendmmsg call (default 64).
	Batch int
	// CPU pins the sending thread (-1: leave it).
	CPU int
}

// GenResult counts what a generator run did.
type GenResult struct {
	// Sent frames were accepted by the socket.
	Sent uint64 `json:"sent"`
	// NoBufs frames were refused with ENOBUFS (the veth peer's backlog
	// was full) and skipped.
	NoBufs uint64 `json:"nobufs"`
	// Errors frames failed otherwise and were skipped.
	Errors  uint64  `json:"errors"`
	Seconds float64 `json:"seconds"`
	// FirstError is the first non-ENOBUFS error, if any.
	FirstError string `json:"first_error,omitempty"`
}
