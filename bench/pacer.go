package bench

import (
	"math"
	"time"
)

// Pacer spreads frames over time in batches: at most Batch frames at once,
// and on average Rate frames per second. A sender that fell behind (it was
// descheduled) catches up in full batches, so the average holds over the
// run. Rate 0 means as fast as possible.
type Pacer struct {
	Rate  float64
	Batch int
}

// Next returns how many frames may be sent now, having sent sent frames in
// elapsed since the start, or, when none may, how long to wait before
// asking again. It waits until a whole batch is due, so that a paced
// sender still uses full batches.
func (p Pacer) Next(sent uint64, elapsed time.Duration) (n int, wait time.Duration) {
	batch := max(p.Batch, 1)
	if p.Rate <= 0 {
		return batch, 0
	}
	due := p.Rate * elapsed.Seconds()
	allowed := math.Floor(due) - float64(sent)
	if allowed >= float64(batch) {
		return batch, 0
	}
	// Wait until sent+batch frames are due.
	w := (float64(sent)+float64(batch))/p.Rate - elapsed.Seconds()
	d := time.Duration(math.Ceil(w * float64(time.Second)))
	if d <= 0 {
		d = time.Microsecond
	}
	return 0, d
}
