//go:build linux

package e2e

import (
	be "encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// vlanLab: the client is on VLAN 100, which reaches the director tagged on
// the interface it serves, d0, with no VLAN device on the director (a
// director serving a trunk's parent). This machine's kernel has neither
// 8021q nor bridge VLAN filtering, so a small switch in userspace does the
// tagging (vlanSwitch): the client's port pc is an access port of VLAN
// 100, the director's port pd a trunk carrying VLAN 100 tagged; untagged
// frames from the director (VLAN 1) reach nobody.
//
//	cli c0 10.0.1.2 ── pc [sw: vlanSwitch] pd ═(VLAN 100)═ d0 [dir] d1 10.0.2.1 ── r0 10.0.2.11 [rs1]
//
// The VIP 10.0.1.100 is on the client's subnet and nowhere configured:
// uvsd answers ARP for it on VLAN 100, and NAT replies go back tagged.
type vlanLab struct {
	cli, dir, sw, rs *netnstest.NS
	sw100            *vlanSwitch
}

func newVLANLab(t *testing.T) *vlanLab {
	t.Helper()
	netnstest.RequireTool(t, "ethtool")
	l := &vlanLab{cli: netnstest.New(t, "vcli"), dir: netnstest.New(t, "vdir"), sw: netnstest.New(t, "vsw"), rs: netnstest.New(t, "vrs")}
	netnstest.Veth(t, l.cli, "c0", l.sw, "pc")
	netnstest.Veth(t, l.dir, "d0", l.sw, "pd")
	netnstest.Veth(t, l.dir, "d1", l.rs, "r0")
	// The switch copies frames as they are: the senders complete their
	// checksums and send no segmentation-offload super-frames.
	for _, x := range []struct {
		ns  *netnstest.NS
		dev string
	}{{l.cli, "c0"}, {l.rs, "r0"}, {l.dir, "d1"}, {l.dir, "d0"}} {
		x.ns.Exec(t, "ethtool", "-K", x.dev, "tx", "off", "gso", "off", "gro", "off")
	}
	l.cli.AddrAdd(t, "c0", "10.0.1.2/24")
	l.dir.AddrAdd(t, "d1", "10.0.2.1/24")
	l.dir.Sysctl(t, "net.ipv4.ip_forward", "1")
	l.rs.AddrAdd(t, "r0", "10.0.2.11/24")
	l.rs.RouteAdd(t, "default", "via", "10.0.2.1")
	startRealServer(t, l.rs, "rs1")
	l.sw100 = startVLANSwitch(t, l.sw, "pc", "pd", 100)
	return l
}

// vlanSwitch bridges an access port and a trunk port for one VLAN: frames
// from the access port leave the trunk tagged with the VLAN; frames on the
// trunk tagged with it leave the access port untagged; anything else on
// the trunk (untagged: VLAN 1, or another VLAN) is dropped and counted.
type vlanSwitch struct {
	access, trunk int // AF_PACKET sockets
	vid           uint16
	dropped       atomic.Int64 // trunk frames not on the VLAN
	stop          atomic.Bool
	wg            sync.WaitGroup
}

func startVLANSwitch(t *testing.T, ns *netnstest.NS, access, trunk string, vid uint16) *vlanSwitch {
	t.Helper()
	s := &vlanSwitch{vid: vid}
	err := ns.Do(func() error {
		var err error
		if s.access, err = rawSocket(access); err != nil {
			return err
		}
		s.trunk, err = rawSocket(trunk)
		return err
	})
	if err != nil {
		t.Fatalf("vlan switch in %s: %v", ns.Name, err)
	}
	s.wg.Add(2)
	go s.run(s.access, s.trunk, true)
	go s.run(s.trunk, s.access, false)
	t.Cleanup(func() {
		s.stop.Store(true) // the readers see it within a receive timeout
		s.wg.Wait()
		_ = unix.Close(s.access)
		_ = unix.Close(s.trunk)
	})
	return s
}

// rawSocket opens an AF_PACKET socket on dev (in the calling goroutine's
// namespace) that reports offloaded VLAN tags (PACKET_AUXDATA).
func rawSocket(dev string) (int, error) {
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		return -1, err
	}
	proto := int(uint16(unix.ETH_P_ALL)<<8 | uint16(unix.ETH_P_ALL)>>8) // htons
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, err
	}
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifc.Index}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// run copies frames from one port to the other until stopped;
// fromAccess says which way.
func (s *vlanSwitch) run(from, to int, fromAccess bool) {
	defer s.wg.Done()
	buf := make([]byte, 4+65536)
	oob := make([]byte, 256)
	for !s.stop.Load() {
		n, oobn, _, sa, err := unix.Recvmsg(from, buf[4:], oob, 0)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil || n == 0 {
			return
		}
		if ll, ok := sa.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // our own, or the namespace's, transmissions
		}
		frame := buf[4 : 4+n]
		tagged, tci := false, uint16(0)
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
					aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
					if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
						tagged, tci = true, aux.Vlan_tci
					}
				}
			}
		}
		if !tagged && n >= 18 && be.BigEndian.Uint16(frame[12:]) == 0x8100 {
			// Still in-line: take it out.
			tagged, tci = true, be.BigEndian.Uint16(frame[14:])
			copy(frame[4:16], frame[:12])
			frame = frame[4:]
		}
		if fromAccess {
			if tagged {
				continue
			}
			// Tag: move the MAC addresses 4 bytes back.
			out := buf[:n+4]
			copy(out[:12], out[4:16])
			be.BigEndian.PutUint16(out[12:], 0x8100)
			be.BigEndian.PutUint16(out[14:], s.vid)
			_, _ = unix.Write(to, out)
			continue
		}
		if !tagged || tci&0x0fff != s.vid {
			s.dropped.Add(1)
			continue
		}
		_, _ = unix.Write(to, frame)
	}
}

// TestVLAN: a client on VLAN 100 resolves the VIP (ARP answered on the
// VLAN), and its TCP and UDP requests are answered on the VLAN they came
// from. Before: the ARP reply and the NAT replies left d0 untagged, in
// VLAN 1, and the client never got them.
func TestVLAN(t *testing.T) {
	l := newVLANLab(t)
	startUVSD(t, l.dir, `-A -t 10.0.1.100:80 -s rr
-a -t 10.0.1.100:80 -r 10.0.2.11:80 -m
-A -u 10.0.1.100:53 -s rr
-a -u 10.0.1.100:53 -r 10.0.2.11:5353 -m
`)
	if got := curl(t, l.cli, "http://10.0.1.100/"); got != "rs1" {
		t.Fatalf("HTTP over VLAN 100 answered %q, want rs1", got)
	}
	if got := curlSum(t, l.cli, "http://10.0.1.100/big"); got != bigSum {
		t.Fatalf("download over VLAN 100: sha256 %s, want %s", got, bigSum)
	}
	if r := udpExchange(t, l.cli, "10.0.1.100:53", "vlan"); r != "rs1:vlan" {
		t.Fatalf("UDP over VLAN 100 answered %q", r)
	}
	if d := l.sw100.dropped.Load(); d != 0 {
		t.Logf("the switch dropped %d frames from the director not on VLAN 100", d)
	}
}
