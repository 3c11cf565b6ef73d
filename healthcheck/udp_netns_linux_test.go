package healthcheck

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// hcPair is a checker namespace and a real-server namespace joined by a
// veth: 198.18.7.1 / fd00:7::1 (checker), 198.18.7.2 / fd00:7::2 (real
// server); 198.18.7.3 and fd00:7::3 are on the link but nobody has them.
func hcPair(t *testing.T) (cli, srv *netnstest.NS) {
	t.Helper()
	cli = netnstest.New(t, "hxc")
	srv = netnstest.New(t, "hxs")
	netnstest.Veth(t, cli, "hx0", srv, "hx1")
	cli.AddrAdd(t, "hx0", "198.18.7.1/24")
	srv.AddrAdd(t, "hx1", "198.18.7.2/24")
	cli.AddrAdd(t, "hx0", "fd00:7::1/64")
	srv.AddrAdd(t, "hx1", "fd00:7::2/64")
	return cli, srv
}

// probeIn runs one probe inside ns, so its socket lives there.
func probeIn(t *testing.T, ns *netnstest.NS, p Prober, tgt Target) Result {
	t.Helper()
	var r Result
	if err := ns.Do(func() error { r = p.Probe(context.Background(), tgt); return nil }); err != nil {
		t.Fatalf("netns %s: %v", ns.Name, err)
	}
	return r
}

// udpListenIn opens a UDP socket inside ns.
func udpListenIn(t *testing.T, ns *netnstest.NS, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", ns.Name, err)
	}
	return pc
}

func TestNetnsUDPCheck(t *testing.T) {
	cli, srv := hcPair(t)
	echo4 := startUDPTestServer(t, udpListenIn(t, srv, "198.18.7.2:0"), echo)
	echo6 := startUDPTestServer(t, udpListenIn(t, srv, "[fd00:7::2]:0"), echo)
	silent := startUDPTestServer(t, udpListenIn(t, srv, "198.18.7.2:0"), func([]byte) []byte { return nil })
	closedPC := udpListenIn(t, srv, "198.18.7.2:0")
	closed := closedPC.LocalAddr().(*net.UDPAddr).AddrPort()
	closedPC.Close()

	want := UDPCheck{Payload: []byte{0xca, 0xfe, 0x01}, RequireReply: true, Reply: mustHexMask(t, "caXe")}
	long := 10 * time.Second
	tests := []struct {
		name  string
		check UDPCheck
		tgt   Target
		ok    bool
		msg   string
	}{
		{"echo v4", want, Target{Addr: echo4.addr, Timeout: long}, true, "success."},
		{"echo v6", want, Target{Addr: echo6.addr, Timeout: long}, true, "success."},
		{"echo bound", want, Target{Addr: echo4.addr, BindTo: netip.MustParseAddr("198.18.7.1"), BindPort: 40007, Timeout: long}, true, "success."},
		{"echo with fwmark", want, Target{Addr: echo4.addr, FWMark: 7, Timeout: long}, true, "success."},
		{"silence", UDPCheck{}, Target{Addr: silent.addr, Timeout: 300 * time.Millisecond}, true, "success."},
		{"silence, reply required", want, Target{Addr: silent.addr, Timeout: 300 * time.Millisecond}, false, "timeout."},
		{"port unreachable", UDPCheck{}, Target{Addr: closed, Timeout: long}, false, "connection refused"},
		// ARP fails after about 3 s; the kernel's host unreachable
		// reaches the socket only thanks to IP_RECVERR.
		{"no such host", UDPCheck{}, Target{Addr: netip.MustParseAddrPort("198.18.7.3:53"), Timeout: 20 * time.Second}, false, "no route to host"},
		{"no route", UDPCheck{}, Target{Addr: netip.MustParseAddrPort("203.0.113.9:53"), Timeout: long}, false, "unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := probeIn(t, cli, &tt.check, tt.tgt)
			if r.OK != tt.ok || !strings.Contains(r.Msg, tt.msg) {
				t.Errorf("got %+v, want ok=%v msg …%q…", r, tt.ok, tt.msg)
			}
		})
	}
	if got := echo4.received(); len(got) < 3 || string(got[2]) != "\xca\xfe\x01" {
		t.Errorf("echo server received %q", got)
	}
}
