package healthcheck

import (
	"strconv"
	"sync"
)

// QuorumConfig is a virtual server's quorum options (reference §2.6).
type QuorumConfig struct {
	// Quorum and Hysteresis after keepalived's start-up clamping (see
	// ClampQuorum). keepalived's default quorum is 1, hysteresis 0.
	Quorum, Hysteresis uint32
	// VS names the virtual server in log lines ("[10.0.1.1]:tcp:80").
	VS string
	// SorryServer names the sorry server ("[192.168.200.200]:tcp:1358");
	// empty: none. SorryInhibit is sorry_server_inhibit.
	SorryServer  string
	SorryInhibit bool
}

// ClampQuorum applies keepalived's start-up fix-ups (§1.6): quorum is at
// most the sum of the real servers' weights, hysteresis at most quorum-1.
func ClampQuorum(quorum, hysteresis uint32, weightSum int64) (uint32, uint32) {
	if int64(quorum) > weightSum {
		quorum = uint32(max(weightSum, 0))
	}
	if quorum == 0 {
		hysteresis = 0
	} else if hysteresis > quorum-1 {
		hysteresis = quorum - 1
	}
	return quorum, hysteresis
}

// QuorumChange is a change of a virtual server's quorum state and what
// the director must do about its pool, in order.
type QuorumChange struct {
	// Up is the new state; Init marks the evaluation at start-up.
	Up, Init bool
	// Threshold and WeightSum are the numbers of the log line.
	Threshold, WeightSum int64
	// Msgs are keepalived's log lines, in order.
	Msgs []string
	// On gain with an active sorry server: remove (or, with inhibit,
	// set weight 0) the sorry server, then add the alive real servers.
	RemoveSorry, AddAlive bool
	// On loss with a sorry server that is not active: remove the alive
	// real servers, then add (or enable) the sorry server.
	RemoveAlive, AddSorry bool
}

// Quorum is keepalived's update_quorum_state for one virtual server: it
// turns the weight sum of the alive real servers into quorum up/down,
// with hysteresis, and into the sorry server's moves. The director calls
// Update after every real server change (and weight change) with
// Σ clamp(effective weight, 0, MaxInt32) of the alive real servers.
type Quorum struct {
	cfg QuorumConfig

	mu          sync.Mutex
	up          bool
	sorryActive bool
}

// NewQuorum returns the quorum of a virtual server whose alive real
// servers weigh initialSum before the checkers run (keepalived's
// set_quorum_states: up iff initialSum ≥ quorum + hysteresis). Then call
// Update(sum, true) once the real servers have been added.
func NewQuorum(cfg QuorumConfig, initialSum int64) *Quorum {
	return &Quorum{cfg: cfg, up: initialSum >= int64(cfg.Quorum)+int64(cfg.Hysteresis)}
}

// Up reports whether the quorum is up.
func (q *Quorum) Up() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.up
}

// SorryActive reports whether the sorry server is in the pool.
func (q *Quorum) SorryActive() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.sorryActive
}

// PoolWritable reports whether real server changes go to the pool now
// (perform_svr_state): when the quorum is up, or no sorry server is
// active. Otherwise only the real server's state and notifiers change.
func (q *Quorum) PoolWritable() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.up || !q.sorryActive
}

// Update evaluates the quorum with the alive real servers' weight sum;
// init marks the start-up evaluation. It returns the change, if any.
func (q *Quorum) Update(weightSum int64, init bool) (QuorumChange, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	quorum, hyst := int64(q.cfg.Quorum), int64(q.cfg.Hysteresis)
	threshold := quorum + hyst
	if q.up {
		threshold = quorum - hyst
	}
	qs, hs := strconv.FormatInt(quorum, 10), strconv.FormatInt(hyst, 10)
	nums := strconv.FormatInt(threshold, 10)
	sum := strconv.FormatInt(weightSum, 10)
	c := QuorumChange{Init: init, Threshold: threshold, WeightSum: weightSum}
	sorry := q.cfg.SorryServer != ""
	switch {
	case !q.up && weightSum >= threshold:
		q.up, c.Up = true, true
		c.Msgs = append(c.Msgs, "Gained quorum "+qs+"+"+hs+"="+nums+" <= "+sum+" for VS "+q.cfg.VS)
		if sorry && q.sorryActive {
			verb := "Removing"
			if q.cfg.SorryInhibit {
				verb = "Disabling"
			}
			c.Msgs = append(c.Msgs, verb+" sorry server "+q.cfg.SorryServer+" from VS "+q.cfg.VS,
				"Adding alive servers to the pool for VS "+q.cfg.VS)
			c.RemoveSorry, c.AddAlive = true, true
			q.sorryActive = false
		}
		return c, true
	case (q.up && (weightSum == 0 || weightSum < threshold)) || (init && !q.up && sorry && !q.sorryActive):
		q.up = false
		what := "Lost quorum"
		if init {
			what = "Starting with quorum down"
		}
		c.Msgs = append(c.Msgs, what+" "+qs+"-"+hs+"="+nums+" > "+sum+" for VS "+q.cfg.VS)
		if sorry && !q.sorryActive {
			verb := "Adding"
			if q.cfg.SorryInhibit {
				verb = "Enabling"
			}
			c.Msgs = append(c.Msgs, verb+" sorry server "+q.cfg.SorryServer+" to VS "+q.cfg.VS,
				"Removing alive servers from the pool for VS "+q.cfg.VS)
			c.RemoveAlive, c.AddSorry = true, true
			q.sorryActive = true
		}
		return c, true
	}
	return QuorumChange{}, false
}
