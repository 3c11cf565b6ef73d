package e2e

import (
	encbin "encoding/binary"
	"fmt"
	"hash/crc32"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// The kernel here has no sctp module, so these tests speak SCTP through
// raw IPv4 sockets (IPPROTO_SCTP, 132): the client sends the chunks of an
// association set-up by hand and the real server answers them, each with
// its CRC32c computed here.

var castagnoliTab = crc32.MakeTable(crc32.Castagnoli)

// sctpMsg is an SCTP packet as the raw socket sends and receives it.
type sctpMsg struct {
	sport, dport uint16
	tag          uint32
	chunk        uint8
	body         []byte
}

// marshal builds the packet with a correct CRC32c (stored least
// significant byte first, RFC 9260 appendix A).
func (m sctpMsg) marshal() []byte {
	b := make([]byte, 12, 16+len(m.body)+3)
	encbin.BigEndian.PutUint16(b[0:], m.sport)
	encbin.BigEndian.PutUint16(b[2:], m.dport)
	encbin.BigEndian.PutUint32(b[4:], m.tag)
	b = append(b, m.chunk, 0, 0, 0)
	encbin.BigEndian.PutUint16(b[14:], uint16(4+len(m.body)))
	b = append(b, m.body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	encbin.LittleEndian.PutUint32(b[8:], crc32.Checksum(b, castagnoliTab))
	return b
}

// parseSCTP decodes a received packet and reports whether its CRC32c
// verifies.
func parseSCTP(b []byte) (m sctpMsg, crcOK, ok bool) {
	if len(b) < 16 {
		return m, false, false
	}
	c := append([]byte(nil), b...)
	stored := encbin.LittleEndian.Uint32(c[8:])
	copy(c[8:12], []byte{0, 0, 0, 0})
	m = sctpMsg{sport: encbin.BigEndian.Uint16(b[0:]), dport: encbin.BigEndian.Uint16(b[2:]),
		tag: encbin.BigEndian.Uint32(b[4:]), chunk: b[12]}
	if l := int(encbin.BigEndian.Uint16(b[14:])); l >= 4 && 12+l <= len(b) {
		m.body = b[16 : 12+l]
	}
	return m, crc32.Checksum(c, castagnoliTab) == stored, true
}

// sctpRaw is a raw SCTP socket in a namespace.
type sctpRaw struct{ pc net.PacketConn }

// openSCTPRaw opens a raw IPv4 socket for protocol 132 in ns, bound to
// laddr (the source of what it sends; "" for any).
func openSCTPRaw(t *testing.T, ns *netnstest.NS, laddr string) *sctpRaw {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("ip4:132", laddr)
		return err
	}); err != nil {
		t.Fatalf("raw SCTP socket: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	return &sctpRaw{pc}
}

func (r *sctpRaw) send(t *testing.T, to string, m sctpMsg) {
	t.Helper()
	if _, err := r.pc.WriteTo(m.marshal(), &net.IPAddr{IP: net.ParseIP(to)}); err != nil {
		t.Fatalf("send SCTP to %s: %v", to, err)
	}
}

// recv waits up to d for a packet of chunk type chunk to port dport and
// returns it with its source address.
func (r *sctpRaw) recv(dport uint16, chunk uint8, d time.Duration) (m sctpMsg, from netip.Addr, crcOK bool, err error) {
	buf := make([]byte, 2048)
	deadline := time.Now().Add(d)
	for {
		_ = r.pc.SetReadDeadline(deadline)
		n, addr, err := r.pc.ReadFrom(buf)
		if err != nil {
			return m, from, false, err
		}
		m, crcOK, ok := parseSCTP(buf[:n])
		if ok && m.dport == dport && m.chunk == chunk {
			a, _ := netip.AddrFromSlice(addr.(*net.IPAddr).IP.To4())
			return m, a, crcOK, nil
		}
	}
}

// sctpConn returns the state of the one SCTP connection uvsadm -Lnc lists
// and its line, or "" while there is none.
func sctpConn(t *testing.T, ns *netnstest.NS) (state, line string) {
	t.Helper()
	for _, l := range strings.Split(uvsadmIn(t, ns, "-Lnc"), "\n") {
		if f := strings.Fields(l); len(f) == 6 && f[0] == "SCTP" {
			return f[2], l
		}
	}
	return "", ""
}

// sctpInit sends an INIT from the client until the server side's socket
// gets it (the first may wait for the director's neighbour resolution).
func sctpInit(t *testing.T, cli, srv *sctpRaw, vip string, init sctpMsg, srvPort uint16) (sctpMsg, netip.Addr, bool) {
	t.Helper()
	var lastErr error
	for range 5 {
		cli.send(t, vip, init)
		m, from, ok, err := srv.recv(srvPort, 1, time.Second)
		if err == nil {
			return m, from, ok
		}
		lastErr = err
	}
	t.Fatalf("the real server got no INIT: %v", lastErr)
	return sctpMsg{}, netip.Addr{}, false
}

// TestSCTPNAT: an SCTP service with a NAT real server on another port. The
// INIT reaches the real server with its destination address and port
// translated and a valid CRC32c; the INIT ACK reaches the client from
// VIP:vport with a valid CRC32c; uvsadm -Lnc shows the association as
// ipvsadm does (C-SENT after the server's INIT ACK, ESTABLISHED after
// COOKIE ECHO / COOKIE ACK).
func TestSCTPNAT(t *testing.T) {
	l := newNATLab(t)
	startUVSD(t, l.dir, `-A --sctp-service 10.0.1.100:3868 -s rr
-a --sctp-service 10.0.1.100:3868 -r 10.0.2.11:3869 -m
`)
	cli := openSCTPRaw(t, l.cli, "10.0.1.2")
	rs := openSCTPRaw(t, l.rs[0], "10.0.2.11")
	const cport, vport, rport = 40001, 3868, 3869
	got, from, crcOK := sctpInit(t, cli, rs, "10.0.1.100", sctpMsg{sport: cport, dport: vport, chunk: 1, body: []byte("init-params!")}, rport)
	if from != netip.MustParseAddr("10.0.1.2") || got.sport != cport || string(got.body) != "init-params!" {
		t.Fatalf("real server got INIT from %v:%d body %q", from, got.sport, got.body)
	}
	if !crcOK {
		t.Fatal("the INIT reached the real server with a CRC32c that does not verify (not recomputed after the port change)")
	}
	rs.send(t, "10.0.1.2", sctpMsg{sport: rport, dport: cport, tag: 0x11223344, chunk: 2, body: []byte("init-ack-cookie")})
	ack, from, crcOK, err := cli.recv(cport, 2, 3*time.Second)
	if err != nil {
		t.Fatalf("client got no INIT ACK: %v", err)
	}
	if from != netip.MustParseAddr("10.0.1.100") || ack.sport != vport || !crcOK || string(ack.body) != "init-ack-cookie" {
		t.Fatalf("INIT ACK from %v:%d crc ok %v body %q, want from 10.0.1.100:%d", from, ack.sport, crcOK, ack.body, vport)
	}
	if st, line := sctpConn(t, l.dir); st != "C-SENT" || !strings.Contains(line, "10.0.1.2:40001") ||
		!strings.Contains(line, "10.0.1.100:3868") || !strings.Contains(line, "10.0.2.11:3869") {
		t.Fatalf("uvsadm -Lnc: %q (state %q), want C-SENT", line, st)
	}
	cli.send(t, "10.0.1.100", sctpMsg{sport: cport, dport: vport, tag: 0x11223344, chunk: 10, body: []byte("cookie")})
	if _, _, ok, err := rs.recv(rport, 10, 3*time.Second); err != nil || !ok {
		t.Fatalf("COOKIE ECHO at the real server: %v (crc ok %v)", err, ok)
	}
	rs.send(t, "10.0.1.2", sctpMsg{sport: rport, dport: cport, chunk: 11})
	if _, _, ok, err := cli.recv(cport, 11, 3*time.Second); err != nil || !ok {
		t.Fatalf("COOKIE ACK at the client: %v (crc ok %v)", err, ok)
	}
	wait.ForErr(t, 3*time.Second, func() error {
		if st, line := sctpConn(t, l.dir); st != "ESTABLISHED" {
			return fmt.Errorf("uvsadm -Lnc: %q", line)
		}
		return nil
	}, "the association ESTABLISHED")
	if out := uvsadmIn(t, l.dir, "-Ln"); !strings.Contains(out, "SCTP 10.0.1.100:3868 rr") {
		t.Fatalf("uvsadm -Ln:\n%s", out)
	}
}

// TestSCTPDR: with direct routing the INIT reaches the real server (VIP on
// its lo) untouched, the real server answers the client directly, and the
// association is INIT1, then ESTABLISHED on the client's COOKIE ECHO
// (the INPUT_ONLY table).
func TestSCTPDR(t *testing.T) {
	l := newLANLab(t, false)
	drRealServer(t, l.rs[0], "10.0.5.100")
	startUVSD(t, l.dir, `-A --sctp-service 10.0.5.100:2905 -s rr
-a --sctp-service 10.0.5.100:2905 -r 10.0.5.11 -g
`)
	cli := openSCTPRaw(t, l.cli, "10.0.5.2")
	rs := openSCTPRaw(t, l.rs[0], "10.0.5.100")
	const cport, port = 40002, 2905
	got, from, crcOK := sctpInit(t, cli, rs, "10.0.5.100", sctpMsg{sport: cport, dport: port, tag: 0, chunk: 1, body: []byte("dr-init")}, port)
	if from != netip.MustParseAddr("10.0.5.2") || got.sport != cport || !crcOK || string(got.body) != "dr-init" {
		t.Fatalf("real server got INIT from %v:%d crc ok %v body %q", from, got.sport, crcOK, got.body)
	}
	if st, line := sctpConn(t, l.dir); st != "INIT1" && st != "INIT" {
		t.Fatalf("uvsadm -Lnc: %q, want INIT1 (or INIT after a retransmission)", line)
	}
	rs.send(t, "10.0.5.2", sctpMsg{sport: port, dport: cport, chunk: 2, body: []byte("cookie")})
	if _, from, ok, err := cli.recv(cport, 2, 3*time.Second); err != nil || !ok || from != netip.MustParseAddr("10.0.5.100") {
		t.Fatalf("INIT ACK at the client: %v from %v (crc ok %v)", err, from, ok)
	}
	cli.send(t, "10.0.5.100", sctpMsg{sport: cport, dport: port, chunk: 10, body: []byte("cookie")})
	if _, _, ok, err := rs.recv(port, 10, 3*time.Second); err != nil || !ok {
		t.Fatalf("COOKIE ECHO at the real server: %v (crc ok %v)", err, ok)
	}
	wait.ForErr(t, 3*time.Second, func() error {
		if st, line := sctpConn(t, l.dir); st != "ESTABLISHED" {
			return fmt.Errorf("uvsadm -Lnc: %q", line)
		}
		return nil
	}, "the association ESTABLISHED")
}

// TestSCTPSync: a master's sync daemon sends SCTP connections as the
// kernel's ip_vs_sync_conn does, and a backup uvsd on the real servers'
// LAN holds them: the association through the master is listed by the
// backup with the master's state once it is ESTABLISHED and its third
// inbound packet passed (sync_threshold 3), and again at once when a
// SHUTDOWN moves it on (a state change out of ESTABLISHED is sent
// without waiting for the packet count).
func TestSCTPSync(t *testing.T) {
	l := newNATLab(t)
	rules := `-A --sctp-service 10.0.1.100:3868 -s rr
-a --sctp-service 10.0.1.100:3868 -r 10.0.2.11:3869 -m
`
	bk := netnstest.New(t, "bk")
	netnstest.Veth(t, bk, "b0", l.sw, "s9")
	l.sw.IP(t, "link", "set", "s9", "master", "br0")
	bk.AddrAdd(t, "b0", "10.0.2.5/24")
	startUVSD(t, l.dir, rules)
	startUVSD(t, bk, rules)
	uvsadmIn(t, bk, "--start-daemon", "backup", "--mcast-interface", "b0", "--syncid", "7")
	uvsadmIn(t, l.dir, "--start-daemon", "master", "--mcast-interface", "d1", "--syncid", "7")

	cli := openSCTPRaw(t, l.cli, "10.0.1.2")
	rs := openSCTPRaw(t, l.rs[0], "10.0.2.11")
	const cport, vport, rport = 40003, 3868, 3869
	sctpInit(t, cli, rs, "10.0.1.100", sctpMsg{sport: cport, dport: vport, chunk: 1, body: []byte("init")}, rport)
	rs.send(t, "10.0.1.2", sctpMsg{sport: rport, dport: cport, tag: 0x5eed, chunk: 2, body: []byte("cookie")})
	if _, _, _, err := cli.recv(cport, 2, 3*time.Second); err != nil {
		t.Fatalf("client got no INIT ACK: %v", err)
	}
	cli.send(t, "10.0.1.100", sctpMsg{sport: cport, dport: vport, tag: 0x5eed, chunk: 10, body: []byte("cookie")})
	if _, _, _, err := rs.recv(rport, 10, 3*time.Second); err != nil {
		t.Fatalf("COOKIE ECHO at the real server: %v", err)
	}
	rs.send(t, "10.0.1.2", sctpMsg{sport: rport, dport: cport, chunk: 11})
	if _, _, _, err := cli.recv(cport, 11, 3*time.Second); err != nil {
		t.Fatalf("COOKIE ACK at the client: %v", err)
	}
	wait.ForErr(t, 3*time.Second, func() error {
		if st, line := sctpConn(t, l.dir); st != "ESTABLISHED" {
			return fmt.Errorf("master's uvsadm -Lnc: %q", line)
		}
		return nil
	}, "the association ESTABLISHED on the master")
	if st, line := sctpConn(t, bk); st != "" {
		// INIT and COOKIE ECHO are not in the synced states: nothing yet.
		t.Fatalf("the backup holds the association before it was ESTABLISHED and passed 3 packets: %q", line)
	}

	// A DATA chunk: the third inbound packet of an ESTABLISHED association.
	cli.send(t, "10.0.1.100", sctpMsg{sport: cport, dport: vport, tag: 0x5eed, chunk: 0, body: []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 'h', 'i'}})
	if _, _, _, err := rs.recv(rport, 0, 3*time.Second); err != nil {
		t.Fatalf("DATA at the real server: %v", err)
	}
	backupHolds := func(want string) {
		t.Helper()
		wait.ForErr(t, 10*time.Second, func() error {
			st, line := sctpConn(t, bk)
			if st != want || !strings.Contains(line, "10.0.1.2:40003") || !strings.Contains(line, "10.0.1.100:3868") || !strings.Contains(line, "10.0.2.11:3869") {
				return fmt.Errorf("backup's uvsadm -Lnc: %q", line)
			}
			return nil
		}, "the backup to hold the association in state %s", want)
	}
	backupHolds("ESTABLISHED")

	cli.send(t, "10.0.1.100", sctpMsg{sport: cport, dport: vport, tag: 0x5eed, chunk: 7, body: []byte{0, 0, 0, 0}})
	if _, _, _, err := rs.recv(rport, 7, 3*time.Second); err != nil {
		t.Fatalf("SHUTDOWN at the real server: %v", err)
	}
	st, line := sctpConn(t, l.dir)
	if st == "ESTABLISHED" || st == "" {
		t.Fatalf("master's uvsadm -Lnc after SHUTDOWN: %q", line)
	}
	backupHolds(st)
}
