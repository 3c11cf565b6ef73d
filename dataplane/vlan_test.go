package dataplane_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/internal/fuzzwatch"
	"github.com/uvs-lb/uvs/ipfrag"
)

// tagFrame returns frame with an 802.1Q tag (tci) put in front of its
// EtherType, as it is on the wire.
func tagFrame(frame []byte, tci uint16) []byte {
	out := make([]byte, 0, len(frame)+4)
	out = append(out, frame[:12]...)
	out = binary.BigEndian.AppendUint16(out, 0x8100)
	out = binary.BigEndian.AppendUint16(out, tci)
	return append(out, frame[12:]...)
}

// vlanOfFrame returns the VLAN id of a sent frame's 802.1Q tag, -1 if it
// has none; its IPv4/TCP checksums are checked by decode.
func vlanOfFrame(t testing.TB, b []byte) int {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	if q, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); ok {
		return int(q.VLANIdentifier)
	}
	return -1
}

// decodeTagged is decode for a frame that may carry a tag: the checksums
// are checked on the frame with the tag taken out.
func decodeTagged(t testing.TB, b []byte) (vlan int, eth *layers.Ethernet, ip *layers.IPv4, tcp *layers.TCP) {
	t.Helper()
	vlan = vlanOfFrame(t, b)
	plain := b
	if vlan >= 0 {
		plain = append(append([]byte{}, b[:12]...), b[16:]...)
	}
	eth, ip, tcp = decode(t, plain)
	return vlan, eth, ip, tcp
}

// TestVLANRequestAndReply: a request tagged with VLAN 100 goes to the real
// server as routed, untagged, and the real server's reply goes back to the
// client on VLAN 100 (before: untagged, which the client's VLAN never
// sees).
func TestVLANRequestAndReply(t *testing.T) {
	r := newRig(t, natRules)
	syn := tagFrame(tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false), 0x2000|100)
	out := r.run(t, syn)
	if len(out) != 1 || out[0].Ifindex != 2 {
		t.Fatalf("request: sent %d frames (%+v), want 1 on ifindex 2", len(out), out)
	}
	vlan, eth, ip, _ := decodeTagged(t, out[0].Data())
	if vlan != -1 || ip.DstIP.String() != "10.0.2.12" || [6]byte(eth.DstMAC) != macRS2 {
		t.Fatalf("request left on vlan %d to %s via %v, want untagged to 10.0.2.12 via %x", vlan, ip.DstIP, eth.DstMAC, macRS2)
	}
	if got := r.w.Counters.Load(dataplane.CntVLAN); got != 1 {
		t.Fatalf("CntVLAN = %d, want 1", got)
	}

	out = r.run(t, tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, true, true))
	if len(out) != 1 || out[0].Ifindex != 1 {
		t.Fatalf("reply: sent %d frames, want 1 on ifindex 1", len(out))
	}
	vlan, eth, ip, tcp := decodeTagged(t, out[0].Data())
	if vlan != 100 {
		t.Fatalf("reply left on vlan %d, want 100", vlan)
	}
	if ip.SrcIP.String() != "10.0.1.100" || tcp.SrcPort != 80 || [6]byte(eth.DstMAC) != macCli || [6]byte(eth.SrcMAC) != macDir0 {
		t.Fatalf("reply rewritten to %s:%d %v -> %v", ip.SrcIP, tcp.SrcPort, eth.SrcMAC, eth.DstMAC)
	}
	if tci := binary.BigEndian.Uint16(out[0].Data()[14:]); tci>>12 != 0 {
		t.Fatalf("reply tag TCI %#04x: priority bits set", tci)
	}

	// The client's next packet, tagged, keeps going untagged.
	out = r.run(t, tagFrame(tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true), 100))
	if len(out) != 1 || vlanOfFrame(t, out[0].Data()) != -1 {
		t.Fatalf("second request: sent %d frames, tagged %v", len(out), len(out) == 1 && vlanOfFrame(t, out[0].Data()) >= 0)
	}

	// A priority tag (VLAN 0) is the untagged network's: the reply of
	// such a connection leaves untagged.
	out = r.run(t, tagFrame(tcpFrame(t, macCli, macDir0, "10.0.1.3", "10.0.1.100", 40001, 80, true, false), 0xa000))
	if len(out) != 1 {
		t.Fatalf("priority-tagged request: sent %d frames", len(out))
	}
	_, _, ip, _ = decodeTagged(t, out[0].Data())
	rs := ip.DstIP.String()
	rsMAC := macRS1
	if rs == "10.0.2.12" {
		rsMAC = macRS2
	}
	out = r.run(t, tcpFrame(t, rsMAC, macDir1, rs, "10.0.1.3", 8080, 40001, true, true))
	if len(out) != 1 || vlanOfFrame(t, out[0].Data()) != -1 {
		t.Fatalf("reply to a priority-tagged client: sent %d frames, want 1 untagged", len(out))
	}
}

// TestVLANFullNATReply: FULLNAT keeps the client's VLAN too.
func TestVLANFullNATReply(t *testing.T) {
	r := newRig(t, "-A -t 10.0.1.100:80 -s rr\n-a -t 10.0.1.100:80 -r 10.0.2.11:8080 -b\n-P -t 10.0.1.100:80 -z 10.0.2.1\n")
	out := r.run(t, tagFrame(tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false), 7))
	if len(out) != 1 {
		t.Fatalf("request: sent %d frames", len(out))
	}
	vlan, _, ip, tcp := decodeTagged(t, out[0].Data())
	if vlan != -1 {
		t.Fatalf("request tagged %d", vlan)
	}
	out = r.run(t, tcpFrame(t, macRS1, macDir1, "10.0.2.11", ip.SrcIP.String(), 8080, uint16(tcp.SrcPort), true, true))
	if len(out) != 1 {
		t.Fatalf("reply: sent %d frames", len(out))
	}
	if vlan, _, ip, _ := decodeTagged(t, out[0].Data()); vlan != 7 || ip.DstIP.String() != "10.0.1.2" {
		t.Fatalf("reply on vlan %d to %s, want vlan 7 to 10.0.1.2", vlan, ip.DstIP)
	}
}

// TestVLANControlFrames: the port unreachable about a tagged request and
// the ARP answer for a VIP asked on a VLAN go back on that VLAN.
func TestVLANControlFrames(t *testing.T) {
	r := newRig(t, "-A -t 10.0.1.100:80 -s wlc\n-a -t 10.0.1.100:80 -r 10.0.2.11:80 -m -w 0\n")
	out := r.run(t, tagFrame(tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false), 100))
	if len(out) != 1 || vlanOfFrame(t, out[0].Data()) != 100 {
		t.Fatalf("port unreachable: sent %d frames, want 1 on vlan 100", len(out))
	}
	p := gopacket.NewPacket(out[0].Data(), layers.LayerTypeEthernet, gopacket.Default)
	if icmp, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); icmp == nil || icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 3) {
		t.Fatalf("not a port unreachable: %v", p)
	}

	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macCli[:]), DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeDot1Q}
	q := &layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: macCli[:], SourceProtAddress: net.ParseIP("10.0.1.2").To4(),
		DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP("10.0.1.100").To4()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, q, arp); err != nil {
		t.Fatal(err)
	}
	out = r.run(t, buf.Bytes())
	if len(out) != 1 || vlanOfFrame(t, out[0].Data()) != 100 {
		t.Fatalf("ARP: sent %d frames, want a reply on vlan 100", len(out))
	}
	p = gopacket.NewPacket(out[0].Data(), layers.LayerTypeEthernet, gopacket.Default)
	if rep, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP); rep == nil || rep.Operation != layers.ARPReply || [6]byte(rep.SourceHwAddress) != macDir0 {
		t.Fatalf("bad ARP reply: %v", p)
	}
}

// TestVLANNoAllocs: the tagged paths (untag a request, tag a reply) do not
// allocate.
func TestVLANNoAllocs(t *testing.T) {
	r := newRig(t, natRules)
	r.run(t, tagFrame(tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false), 100))
	req := tagFrame(tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, false, true), 100)
	rep := tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, false, true)
	w := dataplane.NewWorker(discardIO{}, r.env)
	b1, b2 := make([]byte, 64+len(req)), make([]byte, 64+len(rep))
	frames := make([]dataplane.Frame, 2)
	allocs := testing.AllocsPerRun(200, func() {
		copy(b1[64:], req)
		copy(b2[64:], rep)
		frames[0] = dataplane.Frame{Buf: b1, Off: 64, Len: len(req), Ifindex: 1}
		frames[1] = dataplane.Frame{Buf: b2, Off: 64, Len: len(rep), Ifindex: 2}
		w.ProcessBatch(frames)
	})
	if tx := w.Counters.Load(dataplane.CntTx); tx < 400 {
		t.Fatalf("the measured paths sent %d frames, want 2 a run", tx)
	}
	if allocs != 0 {
		t.Fatalf("tagged paths allocate %.1f times", allocs)
	}
}

// FuzzVLANWorker feeds tagged frames (any tag, any bytes after it) to a
// worker and checks what it sends: a frame towards the real servers'
// interface leaves untagged, and a frame to the client side carries the
// tag of the flow it belongs to or none.
func FuzzVLANWorker(f *testing.F) {
	tmpl := tcpFrame(f, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)
	f.Add(uint16(100), tmpl[12:], false)
	f.Add(uint16(0x8005), tmpl[12:], true)
	f.Add(uint16(4095), []byte{0x81, 0x00, 0, 5, 0x08, 0x00}, false)
	f.Add(uint16(1), []byte{0x08, 0x06}, false)
	// One worker per fuzzing process, reset for each input (as new).
	var wc workerCache
	f.Fuzz(func(t *testing.T, tci uint16, rest []byte, reply bool) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("tci %#x rest %x", tci, rest) })()
		r := wc.rig(t, natRules)
		r.env.FragMemory = ipfrag.MinMemory // no input is a fragment
		r.w = wc.worker(r.io, r.env)
		frame := tagFrame(append(append([]byte{}, tmpl[:12]...), rest...), tci)
		frames := [][]byte{frame}
		if reply {
			frames = append(frames, tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, true, true))
		}
		for _, o := range r.run(t, frames...) {
			d := o.Data()
			if len(d) < 14 {
				continue
			}
			tagged := binary.BigEndian.Uint16(d[12:]) == 0x8100
			if o.Ifindex == 2 && tagged {
				t.Fatalf("frame to the real servers tagged: %x", d)
			}
			if o.Ifindex == 1 && tagged && binary.BigEndian.Uint16(d[14:])&0x0fff != tci&0x0fff {
				t.Fatalf("frame to the client on vlan %d, the flow's is %d: %x", binary.BigEndian.Uint16(d[14:])&0x0fff, tci&0x0fff, d)
			}
		}
	})
}
