package dataplane_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/uvs-lb/uvs/dataplane"
)

// TestICMPRateLimited: a burst of 10 000 SYNs from distinct sources to a
// service with no destination (a spoofed flood reflected as port
// unreachables) yields at most the bucket's burst of ICMP errors while the
// clock stands still, and at most the rate's worth more one second later;
// the rest are counted as icmp-rate-limited.
func TestICMPRateLimited(t *testing.T) {
	r := newRig(t, "-A -t 10.0.1.100:80 -s wlc\n-a -t 10.0.1.100:80 -r 10.0.2.11:80 -m -w 0\n")
	const n = 10000
	syn := func(i int) []byte {
		src := fmt.Sprintf("10.%d.%d.%d", 100+i>>16, i>>8&0xff, i&0xff)
		return tcpFrame(t, macCli, macDir0, src, "10.0.1.100", uint16(1024+i%60000), 80, true, false)
	}
	flood := func(from, to int) int {
		sent := 0
		for i := from; i < to; i += dataplane.BatchSize {
			var frames [][]byte
			for j := i; j < min(i+dataplane.BatchSize, to); j++ {
				frames = append(frames, syn(j))
			}
			for _, f := range r.run(t, frames...) {
				p := gopacket.NewPacket(f.Data(), layers.LayerTypeEthernet, gopacket.Default)
				if ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ic == nil || ic.TypeCode != layers.CreateICMPv4TypeCode(3, 3) {
					t.Fatalf("sent something other than a port unreachable: %v", p)
				}
				sent++
			}
		}
		return sent
	}
	first := flood(0, n/2)
	if first == 0 || first > dataplane.DefaultICMPBurst {
		t.Fatalf("%d port unreachables for %d SYNs at one instant, want 1..%d (the burst)", first, n/2, dataplane.DefaultICMPBurst)
	}
	r.clock = r.clock.Add(time.Second)
	second := flood(n/2, n)
	if second == 0 || second > dataplane.DefaultICMPBurst {
		// One second refills the bucket, which holds at most the burst.
		t.Fatalf("%d port unreachables one second later, want 1..%d", second, dataplane.DefaultICMPBurst)
	}
	c := &r.w.Counters
	if got := c.Load(dataplane.CntNoDest); got != n {
		t.Fatalf("no-destination counted %d, want %d", got, n)
	}
	if got, want := c.Load(dataplane.CntICMPRateLimited), uint64(n-first-second); got != want {
		t.Fatalf("icmp-rate-limited %d, want %d", got, want)
	}
}

// TestICMPRateLimitPerWorker: the allowance is divided among the workers
// (ICMPLimit.Workers) and refills at PerSec/Workers a second.
func TestICMPRateLimitPerWorker(t *testing.T) {
	r := newRig(t, "-A -t 10.0.1.100:80 -s wlc\n-a -t 10.0.1.100:80 -r 10.0.2.11:80 -m -w 0\n")
	r.env.ICMPLimit = dataplane.ICMPLimit{PerSec: 100, Burst: 10, Workers: 2}
	sent := 0
	for i := range 40 {
		// 40 SYNs 10 ms apart: 5 of burst, then one per 20 ms.
		src := fmt.Sprintf("10.9.0.%d", i+1)
		sent += len(r.run(t, tcpFrame(t, macCli, macDir0, src, "10.0.1.100", 40000, 80, true, false)))
		r.clock = r.clock.Add(10 * time.Millisecond)
	}
	// 5 at once, then 390 ms at 50/s: 19 or 20 more.
	if sent < 5+19 || sent > 5+20 {
		t.Fatalf("sent %d port unreachables, want 24..25", sent)
	}
}

// TestICMPTimeExceededFromDirector: a reply from a real server whose TTL
// runs out on the director (NAT, addressed to the client) gets a Time
// Exceeded back to the real server from the director's own address on
// that side — the route's source towards the real server — never from
// the client's address.
func TestICMPTimeExceededFromDirector(t *testing.T) {
	r := newRig(t, natRules)
	if out := r.run(t, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)); len(out) != 1 {
		t.Fatalf("request: sent %d frames", len(out))
	}
	reply := tcpFrame(t, macRS2, macDir1, "10.0.2.12", "10.0.1.2", 8080, 40000, true, true)
	setTTL(reply, 1)
	out := r.run(t, reply)
	if len(out) != 1 || out[0].Ifindex != 2 {
		t.Fatalf("sent %d frames, want one Time Exceeded back on ifindex 2", len(out))
	}
	p := gopacket.NewPacket(out[0].Data(), layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip == nil || ic == nil || ic.TypeCode != layers.CreateICMPv4TypeCode(11, 0) {
		t.Fatalf("not a Time Exceeded: %v", p)
	}
	if ip.SrcIP.String() != "10.0.2.1" || ip.DstIP.String() != "10.0.2.12" {
		t.Fatalf("Time Exceeded %s -> %s, want 10.0.2.1 -> 10.0.2.12", ip.SrcIP, ip.DstIP)
	}
	if r.w.Counters.Load(dataplane.CntTTL) != 1 {
		t.Fatal("ttl not counted")
	}
}

// setTTL sets an Ethernet/IPv4 frame's TTL and recomputes the header checksum.
func setTTL(frame []byte, ttl uint8) {
	ip := frame[14:]
	ip[8] = ttl
	ip[10], ip[11] = 0, 0
	hl := int(ip[0]&0xf) * 4
	var sum uint32
	for i := 0; i < hl; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	ip[10], ip[11] = byte(^sum>>8), byte(^sum)
}
