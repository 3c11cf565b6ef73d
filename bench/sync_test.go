package bench

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/connsync/wire"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

// syncMessage builds a version 1 sync message with n UDP entries.
func syncMessage(t testing.TB, n int) []byte {
	t.Helper()
	b := wire.NewBuilder(1, wire.DefaultMaxLen)
	b.Reset(9)
	for i := range n {
		e := wire.Entry{Proto: 17, Flags: 0, CPort: uint16(1024 + i), VPort: 9000, DPort: 9000, Timeout: 1,
			CAddr: wire.Addr16(netip.MustParseAddr("198.18.64.1")), VAddr: wire.Addr16(VIP),
			DAddr: wire.Addr16(netip.MustParseAddr("198.18.2.2"))}
		if r := b.Add(&e); r != wire.Added {
			t.Fatalf("entry %d: builder said %v", i, r)
		}
	}
	return append([]byte(nil), b.Message()...)
}

// udpFrame serialises an Ethernet/IPv4/UDP frame with gopacket.
func udpFrame(t testing.TB, dport uint16, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 9, 1}, DstMAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 0x51}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 1, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{198, 18, 9, 1}, DstIP: net.IP{224, 0, 0, 81}}
	udp := &layers.UDP{SrcPort: 8848, DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSyncTally(t *testing.T) {
	msg := syncMessage(t, 40)
	if len(msg) != 8+40*36 {
		t.Fatalf("message of %d bytes, want %d (v1 header + 40 IPv4 entries)", len(msg), 8+40*36)
	}
	frame := udpFrame(t, wire.DefaultPort, msg)
	var tl SyncTally
	tl.Add(frame, wire.DefaultPort)
	tl.Add(udpFrame(t, wire.DefaultPort, syncMessage(t, 3)), wire.DefaultPort)
	if tl.Frames != 2 || tl.Datagrams != 2 || tl.Entries != 43 || tl.Header != 43 || tl.Bad != 0 {
		t.Fatalf("tally %+v, want 2 datagrams with 43 entries", tl)
	}
	if want := uint64(len(msg) + 8 + 3*36); tl.Bytes != want {
		t.Fatalf("payload bytes %d, want %d", tl.Bytes, want)
	}
	if want := uint64(len(frame) + 14 + 20 + 8 + 8 + 3*36); tl.WireBytes != want {
		t.Fatalf("wire bytes %d, want %d", tl.WireBytes, want)
	}

	// Not sync datagrams: another port, not IPv4, not UDP, a fragment,
	// a truncated frame. They count as frames only.
	other := SyncTally{}
	other.Add(udpFrame(t, 8849, msg), wire.DefaultPort)
	arp := append([]byte(nil), frame...)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	other.Add(arp, wire.DefaultPort)
	tcp := append([]byte(nil), frame...)
	tcp[14+9] = 6
	other.Add(tcp, wire.DefaultPort)
	frag := append([]byte(nil), frame...)
	binary.BigEndian.PutUint16(frag[14+6:], 0x2000) // MF
	other.Add(frag, wire.DefaultPort)
	other.Add(frame[:14+20+4], wire.DefaultPort)
	other.Add(frame[:100], wire.DefaultPort) // IP total length beyond the frame
	if other.Frames != 6 || other.Datagrams != 0 || other.Entries != 0 || other.Bytes != 0 {
		t.Fatalf("non-sync frames counted: %+v", other)
	}

	// Ethernet padding after the datagram is not payload.
	padded := append(append([]byte(nil), udpFrame(t, wire.DefaultPort, syncMessage(t, 1))...), make([]byte, 20)...)
	var p SyncTally
	p.Add(padded, wire.DefaultPort)
	if p.Datagrams != 1 || p.Entries != 1 || p.Bytes != 8+36 || p.Bad != 0 {
		t.Fatalf("padded frame: %+v", p)
	}

	// A sync datagram that is not a valid message counts as bad, with no
	// entries.
	bad := append([]byte(nil), msg...)
	binary.BigEndian.PutUint16(bad[2:], uint16(len(bad)+4)) // size field disagrees
	var b SyncTally
	b.Add(udpFrame(t, wire.DefaultPort, bad), wire.DefaultPort)
	if b.Datagrams != 1 || b.Bad != 1 || b.Entries != 0 {
		t.Fatalf("bad message: %+v", b)
	}
}

func FuzzSyncTally(f *testing.F) {
	f.Add(udpFrame(f, wire.DefaultPort, syncMessage(f, 2)))
	f.Add(udpFrame(f, wire.DefaultPort, []byte{0, 9, 0, 4}))
	f.Add(udpFrame(f, 53, []byte("x")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(frame), frame) })()
		var tl SyncTally
		tl.Add(frame, wire.DefaultPort)
		if tl.Frames != 1 || tl.Datagrams > 1 || tl.Bad > tl.Datagrams {
			t.Fatalf("tally %+v after one frame", tl)
		}
		if tl.Bytes > uint64(len(frame)) || tl.WireBytes != uint64(len(frame))*tl.Datagrams {
			t.Fatalf("bytes %d / wire bytes %d of a %d-byte frame", tl.Bytes, tl.WireBytes, len(frame))
		}
		// An entry is at least 24 bytes (version 0, IPv4).
		if tl.Entries*24 > tl.Bytes {
			t.Fatalf("%d entries in %d bytes", tl.Entries, tl.Bytes)
		}
	})
}

// uvsadm -Ln --stats --exact as uvsd prints it.
const statsListing = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
UDP  198.18.0.10:9000                51200    51200        0  5427200        0
  -> 198.18.2.2:9000                 25600    25600        0  2713600        0
  -> 198.18.3.2:9000                 25600    25600        0  2713600        0
TCP  198.18.0.10:80                      7       40       35     2400     3000
  -> 198.18.2.2:80                       7       40       35     2400     3000
`

func TestParseServiceConns(t *testing.T) {
	n, err := ParseServiceConns(statsListing)
	if err != nil || n != 51207 {
		t.Fatalf("got %d, %v; want 51207 (services only, not real servers)", n, err)
	}
	for _, bad := range []string{
		strings.Replace(statsListing, "51200    51200", "  51K    51200", 1), // not --exact
		"IP Virtual Server version 1.2.1 (size=4096)\n",
		"",
	} {
		if _, err := ParseServiceConns(bad); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func TestParseSchedstat(t *testing.T) {
	n, err := ParseSchedstat([]byte("610738 1200 2\n"))
	if err != nil || n != 610738 {
		t.Fatalf("got %d, %v", n, err)
	}
	for _, bad := range []string{"", "1 2", "x 2 3", "-1 2 3", "1 2 3 4"} {
		if _, err := ParseSchedstat([]byte(bad)); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func TestAddSyncExtras(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sec := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	a := syncSnap{atTap: sec(0), atConns: sec(0.02), atSched: sec(0.04), conns: 1000, uvsdNS: 5e9, linkTx: 10,
		tally: SyncTally{Datagrams: 100, Entries: 4000, Bytes: 144800, WireBytes: 148000}}
	b := syncSnap{atTap: sec(4), atConns: sec(4.02), atSched: sec(3.98), conns: 41000, uvsdNS: 5e9 + 0.2e9 - 1e6*0, linkTx: 1010, backupLive: 10400,
		tally: SyncTally{Datagrams: 1100, Entries: 44000, Bytes: 1592800, WireBytes: 1628000, Bad: 1}, tapDrops: 2}
	x := map[string]float64{"delivered_pps": 10000}
	addSyncExtras(x, a, b, 12)
	want := map[string]float64{
		"core_share": 0.12, "new_conns_per_s": 10000, "sync_datagrams_per_s": 250, "sync_entries_per_s": 10000,
		"sync_bytes_per_s": 362000, "sync_wire_bytes_per_s": 370000, "entries_per_datagram": 40, "entries_per_new_conn": 1,
		"link_tx_pps": 250, "backup_live": 10400, "sync_bad": 1, "tap_drops": 2,
		"uvsd_core_share": 0.2 / 3.94, "uvsd_us_per_pkt": 0.2 / 3.94 * 1e6 / 10000,
	}
	for k, w := range want {
		if g, ok := x[k]; !ok || math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
	// A window of no length derives nothing.
	y := map[string]float64{"delivered_pps": 10000}
	addSyncExtras(y, a, a, 12)
	if len(y) != 1 {
		t.Errorf("empty window derived %v", y)
	}
}

// syncReport is a report holding only sync runs: three clean runs each
// of sync on and off, plus a dirty one that must not count.
func syncReport() *Report {
	r := &Report{Timestamp: "20260101T000000Z", Sync: &SyncScale{Rate: 10000, Flows: 40000, Timeout: 1, Threshold: "1 0"},
		Machine: map[string]string{}, Method: map[string]string{"conn-sync": "test"}}
	add := func(fig string, v float64, x map[string]float64) {
		for i, d := range []float64{-0.1, 0, 0.1} {
			e := map[string]float64{}
			for k, xv := range x {
				e[k] = xv * (1 + d)
			}
			r.Runs = append(r.Runs, Run{Candidate: SyncCandidate, Figure: fig, Round: i, Value: Num(v + d), Extra: e, Clean: true, Gate: true})
		}
		r.Runs = append(r.Runs, Run{Candidate: SyncCandidate, Figure: fig, Round: 3, Value: Num(v * 10), Extra: x, Foreign: 0.5})
	}
	add(FigSyncOff, 10, map[string]float64{"core_share": 0.10, "uvsd_us_per_pkt": 4, "uvsd_core_share": 0.04, "new_conns_per_s": 10000, "sync_datagrams_per_s": 0})
	add(FigSyncOn, 11, map[string]float64{"core_share": 0.11, "uvsd_us_per_pkt": 4.5, "uvsd_core_share": 0.045, "new_conns_per_s": 10000,
		"sync_datagrams_per_s": 250, "sync_bytes_per_s": 362000, "entries_per_datagram": 40, "entries_per_new_conn": 1, "total_conns": 51200})
	r.Runs[len(r.Runs)-2].Extra["missing_entries"] = 0
	r.Summarise("generator-ceiling")
	return r
}

func TestSyncSummary(t *testing.T) {
	r := syncReport()
	s := r.Sync
	if s.CPUOn.Median != 11 || s.CPUOff.Median != 10 || s.CPUOn.N != 3 || s.CPUOn.Runs != 4 {
		t.Fatalf("CPU summaries on %+v off %+v (the dirty run must not count)", s.CPUOn, s.CPUOff)
	}
	if math.Abs(float64(s.DeltaUSPerPkt)-1) > 1e-9 || math.Abs(float64(s.DeltaUVSD)-0.5) > 1e-9 || math.Abs(float64(s.DeltaCoreShare)-0.01) > 1e-9 {
		t.Fatalf("deltas %v µs, %v core, uvsd %v µs", s.DeltaUSPerPkt, s.DeltaCoreShare, s.DeltaUVSD)
	}
	if s.Datagrams.Median != 250 || s.PerDatagram.Median != 40 || s.Missing.Median != 0 || s.Missing.N != 1 {
		t.Fatalf("traffic summaries: datagrams %+v per datagram %+v missing %+v", s.Datagrams, s.PerDatagram, s.Missing)
	}
	if math.Abs(s.PairCPU.Median-1) > 1e-9 || s.PairCPU.N != 3 || s.PairCPU.Runs != 4 || s.PairCPU.Max-s.PairCPU.Min > 1e-9 {
		t.Fatalf("paired CPU delta %+v, want 1 in each of the 3 clean rounds", s.PairCPU)
	}
	if math.Abs(s.PairUVSD.Median-0.5) > 1e-9 || math.Abs(s.PairUVSD.Min-0.45) > 1e-9 || math.Abs(s.PairUVSD.Max-0.55) > 1e-9 {
		t.Fatalf("paired uvsd delta %+v, want 0.5 [0.45–0.55]", s.PairUVSD)
	}
	md := r.Markdown("")
	for _, want := range []string{
		"### Connection sync on the master", "| director µs per packet | 10.00 [9.90–10.10] n=3/4 | 11.00 [10.90–11.10] n=3/4 |",
		"| sync datagrams/s on the sync link | 0 [0–0] n=3/4 | 250 [225–275] n=3/4 |", "**+1.00 µs per packet**", "**+1.0 % of the core**",
		"uvsd process **+0.50 µs per packet**", "Paired by round (on − off): director core 1.00 [1.00–1.00] n=3/4 µs per packet", "Lowest runs (on − off; noise only adds): director core +1.00 µs per packet, uvsd process +0.45 µs per packet.", "No candidate was measured", "- **conn-sync**: test",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	// The summary survives the JSON round trip uvs-bench render does.
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	back.Summarise("generator-ceiling")
	if back.Sync == nil || back.Sync.CPUOn != s.CPUOn || back.Sync.Threshold != "1 0" {
		t.Fatalf("after the JSON round trip: %+v", back.Sync)
	}
	// Without runs of one side there is no delta.
	r.Runs = r.Runs[:4]
	r.Summarise("generator-ceiling")
	if !math.IsNaN(float64(r.Sync.DeltaUSPerPkt)) || !math.IsNaN(float64(r.Sync.DeltaUVSD)) {
		t.Fatalf("delta without sync-on runs: %v, %v", r.Sync.DeltaUSPerPkt, r.Sync.DeltaUVSD)
	}
}

func TestSyncConfigValidate(t *testing.T) {
	c := DefaultConfig(false)
	c.SyncRounds = 5
	if err := c.Validate(); err != nil {
		t.Fatalf("default sync settings refused: %v", err)
	}
	for _, bad := range []struct {
		set  func(*Config)
		want string
	}{
		{func(c *Config) { c.SyncFlows = 15000 }, "sync flows 15000"},
		{func(c *Config) { c.SyncRate = 0 }, "sync rate 0"},
		{func(c *Config) { c.SyncWindow = 100 * time.Millisecond }, "sync window 100ms"},
		{func(c *Config) { c.SyncRounds = -1 }, "sync rounds -1"},
	} {
		c := DefaultConfig(false)
		c.SyncRounds = 5
		bad.set(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("error %v, want one naming %q", err, bad.want)
		}
	}
	// Without the figure its settings are not checked.
	c = DefaultConfig(true)
	c.SyncFlows = 1
	if err := c.Validate(); err != nil {
		t.Fatalf("sync settings checked with the figure off: %v", err)
	}
}
