package control

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/uvs-lb/uvs/ipvsadm"
)

// Counters is a reading of uvsd's run-time counters, what uvsadm
// --counters prints: the packet workers' drops and events by reason, the
// parse failures by reason, the packet sockets' ring and transmit
// figures, the connection table's occupancy and pressure, and the health
// checkers' states. The director fills it (Env.Counters); the control
// plane only formats it, so it links no data-plane package.
type Counters struct {
	// Workers are the packet workers, in column order: those stopped
	// when AF_XDP sockets were reopened first (their counts still
	// happened), then the running ones.
	Workers []CounterWorker `json:"workers"`
	// Counters are the figures in a stable order (by group, then as the
	// daemon defines them); every counter is listed, zeros included, so
	// a script finds a name on every run.
	Counters []Counter `json:"counters"`
}

// CounterWorker is one packet worker.
type CounterWorker struct {
	// ID is the worker's number, as uvsd's log lines name it.
	ID int `json:"id"`
	// Running is false for a worker whose socket was closed.
	Running bool `json:"running"`
}

// Counter is one named figure: its total and, for a per-worker figure,
// each worker's share.
type Counter struct {
	// Name is GROUP.NAME: dataplane.rx, malformed.ip-header,
	// afpacket.ring-drops, conntrack.entries, checkers.down...
	Name  string `json:"name"`
	Total uint64 `json:"total"`
	// Workers holds one value per Counters.Workers entry for a figure
	// kept per worker, nil for one that is not (the connection table's).
	// A nil element is a figure a worker cannot give any more (the
	// socket of a stopped worker is closed; its share stays in Total
	// when the daemon kept it).
	Workers []*uint64 `json:"workers,omitempty"`
}

// counters is --counters [--json]. Like /proc/net/ip_vs_stats, which the
// kernel creates world-readable (mode 0 is 0444 in
// ip_vs_control_net_init, net/netfilter/ipvs/ip_vs_ctl.c), it is open to
// every user: the figures name no client and no connection.
func (r *runner) counters(c *ipvsadm.Command) (int, bool) {
	var cs Counters
	if r.env.Counters != nil {
		cs = r.env.Counters()
	}
	var err error
	if c.List.JSON {
		err = FormatCountersJSON(r.out, cs)
	} else {
		err = FormatCounters(r.out, cs)
	}
	if err != nil {
		return ipvsadm.ExitList, true
	}
	return ipvsadm.ExitOK, false
}

// FormatCounters writes uvsadm --counters: a header line
//
//	COUNTER TOTAL w0 w1 ...
//
// then one line per counter, its name, total and (for a per-worker
// figure) each worker's value, "-" where a worker cannot tell, in columns
// separated by spaces: `awk '$1 == "dataplane.no-destination" {print $2}'`
// reads a total. Stopped workers' columns are named w<ID>- (a trailing
// minus).
func FormatCounters(w io.Writer, cs Counters) error {
	head := []string{"COUNTER", "TOTAL"}
	for _, wk := range cs.Workers {
		h := "w" + strconv.Itoa(wk.ID)
		if !wk.Running {
			h += "-"
		}
		head = append(head, h)
	}
	rows := [][]string{head}
	for _, c := range cs.Counters {
		row := []string{c.Name, strconv.FormatUint(c.Total, 10)}
		for _, v := range c.Workers {
			if v == nil {
				row = append(row, "-")
			} else {
				row = append(row, strconv.FormatUint(*v, 10))
			}
		}
		rows = append(rows, row)
	}
	width := make([]int, len(head))
	for _, row := range rows {
		for i, f := range row {
			if i < len(width) {
				width[i] = max(width[i], len(f))
			}
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, f := range row {
			if i >= len(width) {
				break
			}
			switch {
			case i == 0:
				b.WriteString(f)
				if len(row) > 1 {
					b.WriteString(strings.Repeat(" ", width[0]-len(f)))
				}
			default:
				// Numbers right-aligned.
				b.WriteString(" " + strings.Repeat(" ", width[i]-len(f)) + f)
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// FormatCountersJSON writes uvsadm --counters --json: the Counters as one
// JSON object on one line.
func FormatCountersJSON(w io.Writer, cs Counters) error {
	if cs.Workers == nil {
		cs.Workers = []CounterWorker{}
	}
	if cs.Counters == nil {
		cs.Counters = []Counter{}
	}
	b, err := json.Marshal(cs)
	if err != nil {
		return fmt.Errorf("counters: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Changes reports whether the invocation prog args (as Run takes them)
// may change the configuration: the restore personality, and every
// ipvsadm command but the listings (-L, -S, -G, --list-checkers,
// --counters), -h and -v. A command line that does not parse changes
// nothing.
func Changes(prog string, args []string) bool {
	pers, name := ipvsadm.ProgPersonality(prog)
	switch pers {
	case ipvsadm.AsSave:
		return false
	case ipvsadm.AsRestore:
		return true
	}
	cmd, err := ipvsadm.ParseAs(name, args)
	if err != nil {
		return false
	}
	switch cmd.Kind {
	case ipvsadm.CmdList, ipvsadm.CmdSave, ipvsadm.CmdGetLaddr, ipvsadm.CmdListCheckers,
		ipvsadm.CmdCounters, ipvsadm.CmdHelp, ipvsadm.CmdVersion:
		return false
	}
	return true
}
