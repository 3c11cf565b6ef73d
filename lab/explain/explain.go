package explain

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Hop is one capture point along the connection's path, in path order
// from the client.
type Hop struct {
	// Label names the hop in the output, e.g. "client c0",
	// "director d0 (in)", "rs1 r0".
	Label string
	// Path is a pcap file written by package capture (or tcpdump -w).
	Path string
}

// maxViews bounds the distinct rows one kind of packet gets at one hop.
const maxViews = 4

// Packet kinds of the table, in display order.
const (
	kindSYN = iota
	kindSYNACK
	kindRequest
	kindResponse
	kindRST
	numKinds
)

var kindNames = [numKinds]string{"SYN", "SYN-ACK", "request", "response", "RST"}

// row is one distinct view of one kind of packet at one hop.
type row struct {
	kind int
	v    view
	n    int // frames with this view
}

// hopResult is what Flow found at one hop.
type hopResult struct {
	frames int
	rows   []row
	// readErr ends the file early (a truncated or damaged capture).
	readErr error
}

// Flow prints, hop by hop, how the first TCP connection from client to vip
// appears in the hops' captures: its SYN, first SYN-ACK, first request and
// response and any reset, each with MAC, IP and port addresses, TTL and a
// tunnel's outer header. An invalid client matches any client; vip port 0
// matches any port.
//
// The connection is the first SYN from client to vip found in the hops,
// searched in order (normally in the first, the client's, capture); at
// every hop it is then recognised by its initial sequence number, whatever
// the addresses. Flow returns an error if no hop has that SYN, or if a
// capture cannot be opened or is not a pcap file; a capture that ends in
// the middle of a frame is used up to there and noted in the output.
func Flow(w io.Writer, hops []Hop, client netip.Addr, vip netip.AddrPort) error {
	return flow(w, hops, client, vip, func(path string) (io.ReadCloser, error) { return os.Open(path) })
}

// flow is Flow with the way capture files are opened injected.
func flow(w io.Writer, hops []Hop, client netip.Addr, vip netip.AddrPort, open func(string) (io.ReadCloser, error)) error {
	if len(hops) == 0 {
		return errors.New("explain: no hops given")
	}
	if !vip.IsValid() {
		return errors.New("explain: no virtual service address given")
	}
	client, vip = client.Unmap(), netip.AddrPortFrom(vip.Addr().Unmap(), vip.Port())

	// The connection: the first SYN from the client to the VIP.
	var first seg
	found := false
	for _, h := range hops {
		_, err := scan(open, h, func(s *seg) bool {
			if s.syn && !s.ack && s.dst.Addr() == vip.Addr() && (vip.Port() == 0 || s.dst.Port() == vip.Port()) &&
				(!client.IsValid() || s.src.Addr() == client) {
				first, found = *s, true
				return false
			}
			return true
		})
		if err != nil {
			return err
		}
		if found {
			break
		}
	}
	if !found {
		from := "any client"
		if client.IsValid() {
			from = client.String()
		}
		return fmt.Errorf("explain: no TCP SYN from %s to %s in the captures (client hop %q: %s)",
			from, vip, hops[0].Label, hops[0].Path)
	}
	isn := first.seq

	// Every hop's frames of that connection.
	results := make([]hopResult, len(hops))
	var srvISN uint32
	srvKnown := false
	for i, h := range hops {
		res := &results[i]
		var hopSrvISN uint32
		hopSrvKnown := false
		n, err := scan(open, h, func(s *seg) bool {
			kind := -1
			switch {
			case s.syn && !s.ack && !s.rst && s.seq == isn:
				kind = kindSYN
			case s.syn && s.ack && !s.rst && s.ackNum == isn+1:
				kind = kindSYNACK
				if !hopSrvKnown {
					hopSrvISN, hopSrvKnown = s.seq, true
				}
				if !srvKnown {
					srvISN, srvKnown = s.seq, true
				}
			case s.rst && (s.ackNum == isn+1 || s.seq == isn+1):
				kind = kindRST
			case !s.syn && !s.rst && s.payload > 0 && s.seq == isn+1:
				kind = kindRequest
			case !s.syn && !s.rst && s.payload > 0 && ((hopSrvKnown && s.seq == hopSrvISN+1) ||
				(!hopSrvKnown && srvKnown && s.seq == srvISN+1)):
				kind = kindResponse
			}
			if kind >= 0 {
				res.add(kind, s.view)
			}
			return true
		})
		var rerr *readError
		if errors.As(err, &rerr) {
			res.readErr = rerr.err
		} else if err != nil {
			return err
		}
		res.frames = n
	}
	return render(w, hops, results, first)
}

// add counts a frame of the given kind, starting a new row for a view not
// seen before at this hop.
func (r *hopResult) add(kind int, v view) {
	views := 0
	for i := range r.rows {
		if r.rows[i].kind != kind {
			continue
		}
		if r.rows[i].v == v {
			r.rows[i].n++
			return
		}
		views++
	}
	if views < maxViews {
		r.rows = append(r.rows, row{kind: kind, v: v, n: 1})
	}
}

// readError is a capture that could not be read to its end; the frames
// before the damage were used.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }

// pcapngMagic starts a pcapng file (section header block type).
var pcapngMagic = []byte{0x0a, 0x0d, 0x0d, 0x0a}

// scan decodes the TCP segments of a hop's capture in order and passes
// each to fn until fn returns false. It returns the number of frames read;
// an error opening or reading the file header names the hop, and damage
// later in the file is returned as a *readError.
func scan(open func(string) (io.ReadCloser, error), h Hop, fn func(*seg) bool) (int, error) {
	f, err := open(h.Path)
	if err != nil {
		return 0, fmt.Errorf("explain: hop %q: %w", h.Label, err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if magic, _ := br.Peek(4); bytes.Equal(magic, pcapngMagic) {
		return 0, fmt.Errorf("explain: hop %q: %s: pcapng is not supported, write pcap (capture, tcpdump -w, editcap -F pcap)", h.Label, h.Path)
	}
	r, err := pcapgo.NewReader(br)
	if err != nil {
		return 0, fmt.Errorf("explain: hop %q: %s: not a pcap file: %w", h.Label, h.Path, err)
	}
	d := decoder{link: r.LinkType()}
	switch d.link {
	case layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
	default:
		return 0, fmt.Errorf("explain: hop %q: %s: link type %v is not supported (Ethernet, Linux cooked or raw IP)", h.Label, h.Path, d.link)
	}
	n := 0
	for {
		data, _, err := r.ZeroCopyReadPacketData()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, &readError{err}
		}
		n++
		if s, ok := d.decode(data); ok && !fn(&s) {
			return n, nil
		}
	}
}

// Table columns.
const (
	colPacket = iota
	colMAC
	colOuter
	colIP
	colTTL
	colChanged
	numCols
)

var colTitles = [numCols]string{"packet", "MAC src > dst", "outer IP (tunnel)", "IP:port src > dst", "TTL", ""}

// render writes the table: a title, a column header, then each hop's rows
// with the columns aligned across all hops.
func render(w io.Writer, hops []Hop, results []hopResult, first seg) error {
	type line struct {
		text  string // a hop heading or note, printed as is
		cells *[numCols]string
	}
	var lines []line
	hasOuter := false
	var syns []view // the SYN views shown so far, in order
	for i, h := range hops {
		res := &results[i]
		plural := "s"
		if res.frames == 1 {
			plural = ""
		}
		head := fmt.Sprintf("hop %d  %s  (%s, %d frame%s)", i+1, h.Label, h.Path, res.frames, plural)
		lines = append(lines, line{text: head})
		if res.readErr != nil {
			lines = append(lines, line{text: "  (capture ends early: " + res.readErr.Error() + ")"})
		}
		if len(res.rows) == 0 {
			lines = append(lines, line{text: "  (not seen)"})
			continue
		}
		for kind := range numKinds {
			seen := false
			for _, r := range res.rows {
				if r.kind != kind {
					continue
				}
				seen = true
				c := cells(r)
				if r.v.tun.kind != "" {
					hasOuter = true
				}
				if kind == kindSYN {
					if prev := previousHop(syns, &r.v); prev != nil {
						c[colChanged] = changes(prev, &r.v)
					}
					syns = append(syns, r.v)
				}
				lines = append(lines, line{cells: &c})
			}
			if !seen && (kind == kindSYN || kind == kindSYNACK) {
				lines = append(lines, line{cells: &[numCols]string{colPacket: kindNames[kind], colMAC: "(not seen at this hop)"}})
			}
		}
	}

	header := colTitles
	var width [numCols]int
	for _, l := range append(lines, line{cells: &header}) {
		if l.cells == nil {
			continue
		}
		for c, s := range l.cells {
			width[c] = max(width[c], len(s))
		}
	}
	if !hasOuter {
		width[colOuter] = 0
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "TCP connection %s > %s (client SYN seq %d)\n\n", first.src, first.dst, first.seq)
	writeCells := func(c *[numCols]string) {
		var b strings.Builder
		b.WriteString("  ")
		for i, s := range c {
			if width[i] == 0 {
				continue
			}
			b.WriteString(s)
			b.WriteString(strings.Repeat(" ", width[i]-len(s)+2))
		}
		bw.WriteString(strings.TrimRight(b.String(), " "))
		bw.WriteByte('\n')
	}
	writeCells(&header)
	for _, l := range lines {
		if l.cells == nil {
			if strings.HasPrefix(l.text, "hop ") {
				bw.WriteByte('\n')
			}
			bw.WriteString(l.text)
			bw.WriteByte('\n')
			continue
		}
		writeCells(l.cells)
	}
	return bw.Flush()
}

// cells formats a row's columns.
func cells(r row) [numCols]string {
	var c [numCols]string
	c[colPacket] = kindNames[r.kind]
	if r.n > 1 {
		c[colPacket] += " x" + strconv.Itoa(r.n)
	}
	c[colMAC] = "-"
	if r.v.hasMAC {
		c[colMAC] = macString(r.v.srcMAC) + " > " + macString(r.v.dstMAC)
	}
	if r.v.vlan >= 0 {
		c[colMAC] += " vlan " + strconv.Itoa(r.v.vlan)
	}
	if t := r.v.tun; t.kind != "" {
		c[colOuter] = t.kind + " " + endpoint(t.src) + " > " + endpoint(t.dst) + " ttl " + strconv.Itoa(int(t.ttl))
	}
	c[colIP] = r.v.src.String() + " > " + r.v.dst.String()
	c[colTTL] = strconv.Itoa(int(r.v.ttl))
	return c
}

// endpoint prints an address, with its port when it has one.
func endpoint(ap netip.AddrPort) string {
	if ap.Port() == 0 {
		return ap.Addr().String()
	}
	return ap.String()
}

func macString(m [6]byte) string { return net.HardwareAddr(m[:]).String() }

// previousHop returns the SYN view that v is the same packet of one hop
// earlier, among those shown before it: the same view (the frame seen again
// on another wire), else the last with the same (inner) TTL and the same
// tunnel kind (a router that forwarded the outer packet, or a rewrite
// without forwarding), else the last with a TTL one higher (the packet as
// the router or director that forwarded it received it), else the last
// with the same TTL, else the last shown. Comparing with the line above instead would compare a frame the
// director has not touched yet with its own output when one wire carries
// both (a one-armed director, a shared segment).
func previousHop(shown []view, v *view) *view {
	for _, want := range []func(u *view) bool{
		func(u *view) bool { return *u == *v },
		func(u *view) bool { return u.ttl == v.ttl && u.tun.kind == v.tun.kind },
		func(u *view) bool { return int(u.ttl) == int(v.ttl)+1 },
		func(u *view) bool { return u.ttl == v.ttl },
	} {
		for i := len(shown) - 1; i >= 0; i-- {
			if want(&shown[i]) {
				return &shown[i]
			}
		}
	}
	if len(shown) > 0 {
		return &shown[len(shown)-1]
	}
	return nil
}

// changes describes how a SYN's headers differ from the same packet one
// hop earlier (previousHop), e.g. "changed: dst MAC, dst IP 10.0.0.100 > 192.168.10.11".
func changes(a, b *view) string {
	var out []string
	diff := func(name, from, to string) {
		if from != to {
			out = append(out, name+" "+from+" > "+to)
		}
	}
	if a.hasMAC && b.hasMAC {
		if a.srcMAC != b.srcMAC {
			out = append(out, "src MAC")
		}
		if a.dstMAC != b.dstMAC {
			out = append(out, "dst MAC")
		}
	}
	if a.vlan != b.vlan {
		diff("vlan", vlanString(a.vlan), vlanString(b.vlan))
	}
	switch {
	case a.tun.kind == "" && b.tun.kind != "":
		out = append(out, "+"+b.tun.kind+" header "+endpoint(b.tun.src)+" > "+endpoint(b.tun.dst))
	case a.tun.kind != "" && b.tun.kind == "":
		out = append(out, "-"+a.tun.kind+" header")
	case a.tun.kind != b.tun.kind:
		out = append(out, a.tun.kind+" header > "+b.tun.kind+" header")
	case a.tun != b.tun:
		diff("outer src", endpoint(a.tun.src), endpoint(b.tun.src))
		diff("outer dst", endpoint(a.tun.dst), endpoint(b.tun.dst))
		diff("outer TTL", strconv.Itoa(int(a.tun.ttl)), strconv.Itoa(int(b.tun.ttl)))
	}
	diff("src IP", a.src.Addr().String(), b.src.Addr().String())
	diff("src port", strconv.Itoa(int(a.src.Port())), strconv.Itoa(int(b.src.Port())))
	diff("dst IP", a.dst.Addr().String(), b.dst.Addr().String())
	diff("dst port", strconv.Itoa(int(a.dst.Port())), strconv.Itoa(int(b.dst.Port())))
	diff("TTL", strconv.Itoa(int(a.ttl)), strconv.Itoa(int(b.ttl)))
	if len(out) == 0 {
		return "unchanged"
	}
	return "changed: " + strings.Join(out, ", ")
}

func vlanString(v int) string {
	if v < 0 {
		return "none"
	}
	return strconv.Itoa(v)
}
