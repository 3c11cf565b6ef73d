package capture

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Snaplen is the snap length written in the pcap header and the largest
// frame recorded whole (libpcap's maximum). Longer frames are truncated to
// it, with their original length kept in the record.
const Snaplen = 262144

// ErrUnsupported is returned by Start on systems without AF_PACKET.
var ErrUnsupported = errors.New("capture: packet capture is only supported on Linux")

// Capture is a running capture started by Start. Its methods are safe for
// concurrent use.
type Capture struct {
	count atomic.Int64

	stopOnce sync.Once
	stopErr  error

	// stop is the platform's stop-and-close sequence (set by Start).
	stop func() error
}

// Count returns the number of frames written to the file so far.
func (c *Capture) Count() int { return int(c.count.Load()) }

// Stop ends the capture: it stops reading, writes the frames the kernel had
// already queued for the socket, then flushes and closes the file. It
// returns the first error the capture saw (reading, writing or closing);
// later calls return the same error.
func (c *Capture) Stop() error {
	c.stopOnce.Do(func() {
		if c.stop != nil {
			c.stopErr = c.stop()
		}
	})
	return c.stopErr
}
