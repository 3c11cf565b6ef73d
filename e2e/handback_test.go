package e2e

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestHandBackRealServerTraffic: a real server of a port-0 NAT service
// (persistent, -p) uses the director as its default gateway for its own
// traffic too. The ownership hooks keep every packet from it away from the
// kernel (the replies of a port-0 service come from any port); IPVS lets
// the kernel forward those that belong to no connection (ip_vs_out returns
// NF_ACCEPT), so uvsd hands them to the director's stack, which forwards
// them (ip_forward=1 in natLab). rs1 opens TCP connections to an echo
// server on the client, IPv4 and IPv6, and moves 256 KiB through each
// while the service keeps serving the client. Before the hand-back the
// real server's SYN was dropped: the connect timed out.
func TestHandBackRealServerTraffic(t *testing.T) {
	l := newNATLab(t)
	if got := sysctl(t, l.dir, "net.ipv4.ip_forward"); got != "1" {
		t.Fatalf("director's net.ipv4.ip_forward = %s, want 1", got)
	}
	startEcho(t, l.cli, ":7000")
	startUVSD(t, l.dir, `-A -t 10.0.1.100:0 -s rr -p 60
-a -t 10.0.1.100:0 -r 10.0.2.11 -m -w 1
-A -t [fd00:1::100]:0 -s rr -p 60
-a -t [fd00:1::100]:0 -r fd00:2::11 -m -w 1
`)
	for _, url := range []string{"http://10.0.1.100/", "http://[fd00:1::100]/"} {
		if got := curl(t, l.cli, url); got != "rs1" {
			t.Fatalf("GET %s = %q, want rs1", url, got)
		}
	}
	payload := bytes.Repeat([]byte("the real server's own traffic "), 256<<10/30)
	for _, addr := range []string{"10.0.1.2:7000", "[fd00:1::2]:7000"} {
		var c net.Conn
		if err := l.rs[0].Do(func() error {
			var err error
			c, err = net.DialTimeout("tcp", addr, 8*time.Second)
			return err
		}); err != nil {
			t.Fatalf("rs1 connecting to %s through the director: %v", addr, err)
		}
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		go func() { _, _ = c.Write(payload) }()
		got := make([]byte, len(payload))
		if _, err := io.ReadFull(c, got); err != nil {
			c.Close()
			t.Fatalf("rs1 echo through %s: %v", addr, err)
		}
		c.Close()
		if !bytes.Equal(got, payload) {
			t.Fatalf("rs1 echo through %s: %d bytes differ", addr, len(payload))
		}
	}
	// They went through uvsd's hand-back, not around it.
	counters := mustUVSADM(t, l.dir, "--counters")
	handed := ""
	for _, line := range strings.Split(counters, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "dataplane.handed-back" {
			handed = f[1]
		}
	}
	if handed == "" || handed == "0" {
		t.Fatalf("dataplane.handed-back is %q after the real server's connections:\n%s", handed, counters)
	}
	// The service still works, and its connections are uvsd's.
	if got := curl(t, l.cli, "http://10.0.1.100:443/"); got != "rs1" {
		t.Fatalf("GET :443 = %q, want rs1", got)
	}
	if out := mustUVSADM(t, l.dir, "-Lnc"); !strings.Contains(out, "10.0.1.2") {
		t.Fatalf("no connection of the client listed:\n%s", out)
	}
}
