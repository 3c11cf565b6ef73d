//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// TestTUNUploadGRO sends a bulk TCP upload through a TUN service to a real
// server whose receiving interface merges segments (GRO on its veth, which
// gives the veth NAPI). The kernel's GRO, built in (inet_gro_receive →
// ipip_gro_receive, net/ipv4/af_inet.c), merges IPIP segments of one flow
// before the raw socket of uvs-rs reads them: uvs-rs receives IPIP packets
// larger than the MTU whose inner TCP checksum holds only the
// pseudo-header sum (tcp_gro_complete, CHECKSUM_PARTIAL). Every byte must
// arrive, and uvs-rs must have seen such merged packets (else the test
// proves nothing). uvs-rs runs with its TUN offloads (the merged packet is
// written with a partial checksum and a GSO description) and without
// (--no-offload: it completes the checksum itself); the director
// encapsulates in IPIP, in GRE (gre_gro_receive, net/ipv4/gre_offload.c,
// merges it too) with and without the GRE checksum, and in GUE (a plain
// UDP socket: the kernel does not merge, udp_gro_receive). By default
// uvs-rs's tc program decapsulates IPIP, merged packets included
// (ipip-bpf); the IPIP cases of the user-space decapsulator run with
// --no-bpf.
func TestTUNUploadGRO(t *testing.T) {
	const vip4, vip6, rs4, rs6 = "10.0.3.100", "fd00:3::100", "10.0.4.11", "fd00:4::11"
	for _, c := range []struct {
		name    string
		vip, rs string   // service and real server addresses
		tun     string   // the real server's options after -i -w 1
		rsOpts  []string // uvs-rs tun up options
		counter string   // the uvs-rs counter that must move
	}{
		// IPIP with --no-bpf: the user-space decapsulator reads the
		// merged packets.
		{name: "ipip", vip: vip4, rs: rs4, rsOpts: []string{"--no-bpf"}, counter: "kernel-gro"},
		{name: "ipip-no-offload", vip: vip4, rs: rs4, rsOpts: []string{"--no-offload", "--no-bpf"}, counter: "kernel-gro"},
		// IPIP by default: uvs-rs's tc program strips the outer header of
		// the packets GRO merged, in the kernel.
		{name: "ipip-bpf", vip: vip4, rs: rs4, counter: "bpf-decapsulated"},
		{name: "gre", vip: vip4, rs: rs4, tun: "--tun-type gre --tun-nocsum", counter: "kernel-gro"},
		{name: "gre-csum", vip: vip4, rs: rs4, tun: "--tun-type gre --tun-csum", counter: "kernel-gro"},
		{name: "gue", vip: vip4, rs: rs4, tun: "--tun-type gue --tun-port 6080 --tun-nocsum", rsOpts: []string{"--gue-port", "6080"}, counter: "decapsulated"},
		// Outer IPv6 (ipv6_gro_receive → ip6ip6 / ip4ip6 offloads,
		// net/ipv6/ip6_offload.c): read by raw IPv6 sockets.
		{name: "ip6ip6", vip: vip6, rs: rs6, counter: "kernel-gro"},
		{name: "ip4ip6", vip: vip4, rs: rs6, counter: "kernel-gro"},
	} {
		t.Run(c.name, func(t *testing.T) { uploadGRO(t, c.vip, c.rs, c.tun, c.counter, c.rsOpts...) })
	}
}

func uploadGRO(t *testing.T, vip, rsAddr, tunOpts, counter string, extra ...string) {
	l := newRoutedLab(t)
	l.addIPv6(t)
	rs := l.rs[0]
	netnstest.RequireTool(t, "ethtool")
	// GRO on the real server's veth gives it NAPI; veth_xmit hands a
	// packet to the peer's GRO only when the sending veth does no TSO
	// (veth_skb_is_eligible_for_gro): then the router's x2 sends
	// MTU-sized frames, as a wire does.
	rs.Exec(t, "ethtool", "-K", "r0", "gro", "on")
	l.rtr.Exec(t, "ethtool", "-K", "x2", "tso", "off")
	// GRO merges what one NAPI poll gathers, little when the receiver
	// keeps up; a flush timeout keeps held packets across polls
	// (napi_complete_done), as a busy NIC's batches would.
	rs.Exec(t, "sh", "-c", "echo 200000 > /sys/class/net/r0/gro_flush_timeout")
	dir := t.TempDir()
	rs.Exec(t, append([]string{binary("uvs-rs"), "tun", "up", "--vip", vip, "--state-dir", dir}, extra...)...)
	t.Cleanup(func() {
		if out, err := rs.Run(binary("uvs-rs"), "tun", "down", "--state-dir", dir); err != nil {
			t.Errorf("uvs-rs tun down: %v: %s", err, out)
		}
	})
	svc := net.JoinHostPort(vip, "9000")
	startUVSD(t, l.dir, "-A -t "+svc+" -s rr\n-a -t "+svc+" -r "+net.JoinHostPort(rsAddr, "9000")+" -i -w 1 "+tunOpts+"\n")
	// The sink: reads one upload to its end and answers its SHA-256.
	var ln net.Listener
	if err := rs.Do(func() (err error) { ln, err = net.Listen("tcp", ":9000"); return err }); err != nil {
		t.Fatalf("sink: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			return
		}
		_, _ = io.WriteString(c, hex.EncodeToString(h.Sum(nil)))
	}()

	body := bigBody()[:8<<20]
	want := sha256.Sum256(body)
	var conn net.Conn
	if err := l.cli.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", svc, 10*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial the VIP: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	n, err := conn.Write(body)
	if err == nil {
		err = conn.(*net.TCPConn).CloseWrite()
	}
	var got []byte
	if err == nil {
		got, err = io.ReadAll(conn)
	}
	t.Logf("uploaded %d bytes in %v", n, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("upload through the TUN service failed after %d of %d bytes: %v (real server: %d TCP checksum errors)",
			n, len(body), err, tcpInCsumErrors(t, rs))
	}
	if string(got) != hex.EncodeToString(want[:]) {
		t.Fatalf("the real server received data with SHA-256 %q, want %x", got, want)
	}
	// Every segment the kernel merged reached TCP with a valid checksum:
	// none was dropped and retransmitted.
	if e := tcpInCsumErrors(t, rs); e != 0 {
		t.Errorf("the real server's TCP counted %d checksum errors (TcpInCsumErrors): merged packets were written with their partial checksum", e)
	}
	// The path under test carried the upload (else the test proves
	// nothing): the kernel merged packets that uvs-rs decapsulated
	// (kernel-gro), or its tc program decapsulated them, or (GUE, which
	// the kernel does not merge) uvs-rs did. Status refreshes its counters
	// every second.
	var st string
	wait.For(t, 5*time.Second, func() bool {
		st = rs.Exec(t, binary("uvs-rs"), "status", "--state-dir", dir)
		return tunCounters(st)[counter] > 0
	}, "uvs-rs to count %s; status:\n%s", counter, wait.Lazy(func() any { return st }))
	t.Logf("uvs-rs counters: %v", tunCounters(st))
}

// tcpInCsumErrors returns the Tcp InCsumErrors counter of ns
// (/proc/net/snmp).
func tcpInCsumErrors(t *testing.T, ns *netnstest.NS) uint64 {
	t.Helper()
	var names []string
	for _, line := range strings.Split(ns.Exec(t, "cat", "/proc/net/snmp"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "InCsumErrors" && i < len(f) {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					t.Fatalf("InCsumErrors %q: %v", f[i], err)
				}
				return v
			}
		}
	}
	t.Fatal("no Tcp InCsumErrors in /proc/net/snmp")
	return 0
}
