package bench

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/uvs-lb/uvs/connsync/wire"
)

// The connection-sync figure (uvs-bench --sync): what uvsd's master sync
// daemon costs the director at a fixed rate of new connections, and the
// sync traffic it sends.
const (
	FigSyncOn  = "sync-on"  // Value: director-core µs per packet, master sync daemon running
	FigSyncOff = "sync-off" // Value: the same with no sync daemon
	// SyncCandidate names the runs of the sync figure.
	SyncCandidate = "uvs-nat-sync"

	syncThreshold  = "1 0" // the master's sync_threshold: each connection sent once, at its first packet
	syncUDPTimeout = 1     // the master's UDP timeout, seconds
)

// describeSync is a sync run's progress line.
func describeSync(r Run) string {
	if r.Err != "" {
		return "error: " + r.Err
	}
	x := r.Extra
	s := fmt.Sprintf("director %.2f µs/pkt (%.1f %% busy), uvsd %.2f µs/pkt (%.1f %% of a core); %.0f new conn/s; "+
		"%.0f sync datagrams/s, %.0f B/s, %.1f entries/datagram, %.3f entries/new conn; backup %.0f live",
		float64(r.Value), 100*x["core_share"], x["uvsd_us_per_pkt"], 100*x["uvsd_core_share"], x["new_conns_per_s"],
		x["sync_datagrams_per_s"], x["sync_bytes_per_s"], x["entries_per_datagram"], x["entries_per_new_conn"], x["backup_live"])
	if n, ok := x["total_conns"]; ok {
		s += fmt.Sprintf("; %.0f of %.0f connections never synced", x["missing_entries"], n)
	}
	if !r.Clean {
		s += fmt.Sprintf(" [dirty: steal %.0f%%, foreign %.0f%% of a CPU]", r.Steal*100, r.Foreign*100)
	}
	return s
}

// SyncTally counts the sync datagrams seen on the sync link. Its zero
// value is ready; Add is not safe for concurrent use.
type SyncTally struct {
	Frames    uint64 // frames offered to Add
	Datagrams uint64 // IPv4 UDP datagrams to the sync port
	// Bytes are the datagrams' UDP payload (the sync messages), WireBytes
	// the frames carrying them (Ethernet header and all).
	Bytes, WireBytes uint64
	// Entries are the entries a backup accepts (wire.Decode); Header the
	// sum of the headers' entry counts; Bad the datagrams that are not a
	// valid message or had entries dropped.
	Entries, Header, Bad uint64

	dec wire.Decoder
}

// Add counts one received Ethernet frame: a datagram to port carrying a
// sync message, or nothing.
func (t *SyncTally) Add(frame []byte, port uint16) {
	t.Frames++
	msg, ok := udpPayload(frame, port)
	if !ok {
		return
	}
	t.Datagrams++
	t.Bytes += uint64(len(msg))
	t.WireBytes += uint64(len(frame))
	r := t.dec.Decode(msg, func(*wire.Entry) {})
	t.Entries += uint64(r.Accepted)
	t.Header += uint64(r.Count)
	if r.Stop != wire.ReasonNone || r.DroppedEntries() > 0 {
		t.Bad++
	}
}

// udpPayload returns the UDP payload of an Ethernet II frame carrying an
// unfragmented IPv4 UDP datagram to port, bounded by the IP and UDP
// lengths; ok is false for anything else.
func udpPayload(frame []byte, port uint16) ([]byte, bool) {
	const eth = 14
	if len(frame) < eth+20+8 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return nil, false
	}
	ip := frame[eth:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || ip[9] != 17 {
		return nil, false
	}
	if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 { // MF or a fragment offset
		return nil, false
	}
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total > len(ip) || total < ihl+8 {
		return nil, false
	}
	udp := ip[ihl:total]
	if binary.BigEndian.Uint16(udp[2:]) != port {
		return nil, false
	}
	ulen := int(binary.BigEndian.Uint16(udp[4:]))
	if ulen < 8 || ulen > len(udp) {
		return nil, false
	}
	return udp[8:ulen], true
}

// ParseServiceConns sums the Conns column of the virtual-service lines of
// an `ipvsadm -L -n --stats --exact` (uvsadm) listing: the connections
// the services ever scheduled.
func ParseServiceConns(out string) (uint64, error) {
	var sum uint64
	seen := false
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || (f[0] != "TCP" && f[0] != "UDP" && f[0] != "SCTP" && f[0] != "FWM") {
			continue
		}
		n, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stats listing: bad Conns in %q (want --exact numbers)", line)
		}
		sum += n
		seen = true
	}
	if !seen {
		return 0, fmt.Errorf("stats listing: no virtual service in %q", trunc([]byte(out)))
	}
	return sum, nil
}

// ParseSchedstat returns the run time (ns) of a /proc/PID/task/TID/schedstat
// line: "run_ns wait_ns timeslices".
func ParseSchedstat(b []byte) (uint64, error) {
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, fmt.Errorf("schedstat %q: want three numbers", trunc(b))
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("schedstat %q: bad run time", trunc(b))
	}
	return n, nil
}

// syncSnap is the state at one end of a measuring window, each part
// with the time it was read.
type syncSnap struct {
	atTap, atConns, atSched time.Time
	tally                   SyncTally
	tapDrops                uint64
	linkTx                  uint64 // ds's transmitted packets
	conns                   uint64 // uvsd's services' Conns counter
	backupLive              int64
	uvsdNS                  uint64 // uvsd's threads' run time
}

// addSyncExtras derives the sync figure's numbers from a window's two
// snapshots and the run's director cost and delivered rate (x).
func addSyncExtras(x map[string]float64, a, b syncSnap, usPerPkt float64) {
	tapEl := b.atTap.Sub(a.atTap).Seconds()
	connEl := b.atConns.Sub(a.atConns).Seconds()
	schedEl := b.atSched.Sub(a.atSched).Seconds()
	if tapEl <= 0 || connEl <= 0 || schedEl <= 0 {
		return
	}
	dg := float64(b.tally.Datagrams - a.tally.Datagrams)
	ent := float64(b.tally.Entries - a.tally.Entries)
	conns := float64(b.conns-a.conns) / connEl
	x["core_share"] = usPerPkt * x["delivered_pps"] / 1e6
	uvsdShare := float64(b.uvsdNS-a.uvsdNS) / 1e9 / schedEl
	x["uvsd_core_share"] = uvsdShare
	if x["delivered_pps"] > 0 {
		x["uvsd_us_per_pkt"] = uvsdShare * 1e6 / x["delivered_pps"]
	}
	x["new_conns_per_s"] = conns
	x["sync_datagrams_per_s"] = dg / tapEl
	x["sync_bytes_per_s"] = float64(b.tally.Bytes-a.tally.Bytes) / tapEl
	x["sync_wire_bytes_per_s"] = float64(b.tally.WireBytes-a.tally.WireBytes) / tapEl
	x["sync_entries_per_s"] = ent / tapEl
	x["sync_bad"] = float64(b.tally.Bad - a.tally.Bad)
	x["tap_drops"] = float64(b.tapDrops - a.tapDrops)
	x["link_tx_pps"] = float64(b.linkTx-a.linkTx) / tapEl
	x["backup_live"] = float64(b.backupLive)
	x["tap_seconds"], x["sched_seconds"] = tapEl, schedEl
	if dg > 0 {
		x["entries_per_datagram"] = ent / dg
	}
	if conns > 0 {
		x["entries_per_new_conn"] = ent / tapEl / conns
	}
}

// SyncScale is the connection-sync figure's summary.
type SyncScale struct {
	Rate    float64 `json:"offered_pps"`
	Flows   int     `json:"flows"`
	Timeout int     `json:"udp_timeout_s"`
	// Threshold is the sync_threshold sysctl the master ran with.
	Threshold string `json:"sync_threshold"`

	CPUOn   Summary `json:"cpu_us_per_pkt_on"`
	CPUOff  Summary `json:"cpu_us_per_pkt_off"`
	CoreOn  Summary `json:"core_share_on"` // fraction of the director core
	CoreOff Summary `json:"core_share_off"`
	// uvsd's own CPU time (its threads' schedstat run time): per
	// delivered packet and as a fraction of a core.
	UVSDOn      Summary `json:"uvsd_us_per_pkt_on"`
	UVSDOff     Summary `json:"uvsd_us_per_pkt_off"`
	UVSDCoreOn  Summary `json:"uvsd_core_share_on"`
	UVSDCoreOff Summary `json:"uvsd_core_share_off"`
	ConnsOn     Summary `json:"new_conns_per_s_on"`
	ConnsOff    Summary `json:"new_conns_per_s_off"`
	// The sync traffic (sync-on runs).
	Datagrams    Summary `json:"datagrams_per_s"`
	Bytes        Summary `json:"payload_bytes_per_s"`
	WireBytes    Summary `json:"wire_bytes_per_s"`
	Entries      Summary `json:"entries_per_s"`
	PerDatagram  Summary `json:"entries_per_datagram"`
	PerConn      Summary `json:"entries_per_new_conn"`
	LinkTx       Summary `json:"link_tx_pps"`
	BackupLive   Summary `json:"backup_live_conns"`
	OffDatagrams Summary `json:"datagrams_per_s_off"`
	BadDatagrams Summary `json:"bad_datagrams"`
	// Missing are the connections made while the master ran whose entry
	// never reached the observer (ring drops, send errors, losses).
	Missing        Summary `json:"missing_entries"`
	Total          Summary `json:"total_conns"`
	TapDrops       Summary `json:"tap_drops"`
	Note           string  `json:"note,omitempty"`
	DeltaUSPerPkt  Num     `json:"delta_us_per_pkt"`
	DeltaCoreShare Num     `json:"delta_core_share"`
	DeltaUVSD      Num     `json:"delta_uvsd_us_per_pkt"`
	DeltaUVSDCore  Num     `json:"delta_uvsd_core_share"`
	// Paired: on − off within each round (both runs error-free; clean
	// ones when at least MinClean rounds have both clean).
	PairCPU  Summary `json:"paired_delta_us_per_pkt"`
	PairUVSD Summary `json:"paired_delta_uvsd_us_per_pkt"`
}

// summariseSync fills r.Sync's summaries from the sync runs.
func (r *Report) summariseSync() {
	s := r.Sync
	if s == nil {
		return
	}
	on := func(key string) Summary { return summarize(r.Runs, SyncCandidate, FigSyncOn, key) }
	off := func(key string) Summary { return summarize(r.Runs, SyncCandidate, FigSyncOff, key) }
	s.CPUOn, s.CPUOff = on(""), off("")
	s.CoreOn, s.CoreOff = on("core_share"), off("core_share")
	s.UVSDOn, s.UVSDOff = on("uvsd_us_per_pkt"), off("uvsd_us_per_pkt")
	s.UVSDCoreOn, s.UVSDCoreOff = on("uvsd_core_share"), off("uvsd_core_share")
	s.ConnsOn, s.ConnsOff = on("new_conns_per_s"), off("new_conns_per_s")
	s.Datagrams, s.Bytes, s.WireBytes = on("sync_datagrams_per_s"), on("sync_bytes_per_s"), on("sync_wire_bytes_per_s")
	s.Entries, s.PerDatagram, s.PerConn = on("sync_entries_per_s"), on("entries_per_datagram"), on("entries_per_new_conn")
	s.LinkTx, s.BackupLive = on("link_tx_pps"), on("backup_live")
	s.OffDatagrams, s.BadDatagrams, s.TapDrops = off("sync_datagrams_per_s"), on("sync_bad"), on("tap_drops")
	s.Missing, s.Total = on("missing_entries"), on("total_conns")
	s.DeltaUSPerPkt = Num(s.CPUOn.Median - s.CPUOff.Median)
	s.DeltaCoreShare = Num(s.CoreOn.Median - s.CoreOff.Median)
	if !s.CPUOn.Valid() || !s.CPUOff.Valid() {
		s.DeltaUSPerPkt, s.DeltaCoreShare = Num(math.NaN()), Num(math.NaN())
	}
	s.PairCPU = pairedDelta(r.Runs, "")
	s.PairUVSD = pairedDelta(r.Runs, "uvsd_us_per_pkt")
	s.DeltaUVSD = Num(s.UVSDOn.Median - s.UVSDOff.Median)
	s.DeltaUVSDCore = Num(s.UVSDCoreOn.Median - s.UVSDCoreOff.Median)
	if !s.UVSDOn.Valid() || !s.UVSDOff.Valid() {
		s.DeltaUVSD, s.DeltaUVSDCore = Num(math.NaN()), Num(math.NaN())
	}
}

// pairedDelta summarises, round by round, the sync-on run's value (key ""
// is Value, otherwise Extra[key]) minus the sync-off run's.
func pairedDelta(runs []Run, key string) Summary {
	type pair struct {
		on, off       float64
		hasOn, hasOff bool
		clean         bool
	}
	byRound := map[int]*pair{}
	var rounds []int
	for _, r := range runs {
		if r.Candidate != SyncCandidate || r.Err != "" || (r.Figure != FigSyncOn && r.Figure != FigSyncOff) {
			continue
		}
		v := float64(r.Value)
		if key != "" {
			x, ok := r.Extra[key]
			if !ok {
				continue
			}
			v = x
		}
		p := byRound[r.Round]
		if p == nil {
			p = &pair{clean: true}
			byRound[r.Round] = p
			rounds = append(rounds, r.Round)
		}
		if r.Figure == FigSyncOn {
			p.on, p.hasOn = v, true
		} else {
			p.off, p.hasOff = v, true
		}
		p.clean = p.clean && r.Clean
	}
	var clean, all []float64
	for _, n := range rounds {
		p := byRound[n]
		if !p.hasOn || !p.hasOff {
			continue
		}
		all = append(all, p.on-p.off)
		if p.clean {
			clean = append(clean, p.on-p.off)
		}
	}
	return Summarize(clean, all)
}

// syncMarkdown renders the sync figure.
func (s *SyncScale) markdown(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\n### Connection sync on the master (uvs-nat, `--sysctl sync_threshold=\"%s\"`, UDP timeout %d s)\n\n", s.Threshold, s.Timeout)
	p("UDP at %s pps over %d flows, each flow back after %.1f s (> the timeout): every packet should be a new connection, "+
		"which the new-connection row checks (uvsd's service Conns counter). Master sync daemon running vs not, interleaved rounds.\n\n",
		fmtVal(s.Rate), s.Flows, float64(s.Flows)/s.Rate)
	p("The director-core rows are CPU1's busy wall time, everything it ran (also other namespaces' softirq work on a shared machine, which the " +
		"foreign-process check does not see); the uvsd rows are uvsd's own threads' run time (schedstat), which holds the master's whole send path " +
		"(the sync datagrams' receive is steered to CPU0): the steadier figure on a busy host.\n\n")
	p("| | sync off | sync on |\n| --- | --- | --- |\n")
	p("| director µs per packet | %s | %s |\n", cell(s.CPUOff, 1, 2), cell(s.CPUOn, 1, 2))
	p("| director core busy %% | %s | %s |\n", cell(s.CoreOff, 100, 1), cell(s.CoreOn, 100, 1))
	p("| uvsd process µs per packet | %s | %s |\n", cell(s.UVSDOff, 1, 2), cell(s.UVSDOn, 1, 2))
	p("| uvsd process %% of a core | %s | %s |\n", cell(s.UVSDCoreOff, 100, 1), cell(s.UVSDCoreOn, 100, 1))
	p("| new connections/s | %s | %s |\n", cell(s.ConnsOff, 1, 0), cell(s.ConnsOn, 1, 0))
	p("| sync datagrams/s on the sync link | %s | %s |\n", cell(s.OffDatagrams, 1, 0), cell(s.Datagrams, 1, 0))
	p("| sync payload bytes/s (frame bytes/s) | – | %s (%s) |\n", cell(s.Bytes, 1, 0), cell(s.WireBytes, 1, 0))
	p("| entries/s | – | %s |\n", cell(s.Entries, 1, 0))
	p("| entries per datagram | – | %s |\n", cell(s.PerDatagram, 1, 1))
	p("| entries per new connection | – | %s |\n", cell(s.PerConn, 1, 3))
	p("| sync link TX packets/s (all frames) | – | %s |\n", cell(s.LinkTx, 1, 0))
	p("| connections made while the master ran, whole run | – | %s |\n", cell(s.Total, 1, 0))
	p("| of those never synced (ring drops, send errors, losses) | – | %s |\n", cell(s.Missing, 1, 0))
	p("| backup uvsd live connections at window end | – | %s |\n", cell(s.BackupLive, 1, 0))
	p("\nSync cost (medians, on − off): director core **%+.2f µs per packet**, **%+.1f %% of the core**; uvsd process **%+.2f µs per packet**, **%+.1f %% of a core**.",
		float64(s.DeltaUSPerPkt), 100*float64(s.DeltaCoreShare), float64(s.DeltaUVSD), 100*float64(s.DeltaUVSDCore))
	p(" Paired by round (on − off): director core %s µs per packet, uvsd process %s µs per packet.",
		cell(s.PairCPU, 1, 2), cell(s.PairUVSD, 1, 2))
	if s.CPUOn.Valid() && s.CPUOff.Valid() && s.UVSDOn.Valid() && s.UVSDOff.Valid() {
		// Noise on a shared machine only adds: the lowest runs are the
		// least disturbed.
		p(" Lowest runs (on − off; noise only adds): director core %+.2f µs per packet, uvsd process %+.2f µs per packet.",
			s.CPUOn.Min-s.CPUOff.Min, s.UVSDOn.Min-s.UVSDOff.Min)
	}
	p(" Invalid or partly dropped sync datagrams: %s; frames the observer's tap lost: %s.\n", cell(s.BadDatagrams, 1, 0), cell(s.TapDrops, 1, 0))
	if s.Note != "" {
		p("\n%s\n", s.Note)
	}
}
