//go:build linux

package explain_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/lab/capture"
	"github.com/uvs-lb/uvs/lab/explain"
)

// TestFlowCaptured captures both ends of a veth pair while a real TCP
// connection crosses it, then explains the connection from the two pcaps.
func TestFlowCaptured(t *testing.T) {
	a := netnstest.New(t, "exp")
	b := netnstest.New(t, "exp")
	netnstest.Veth(t, a, "a0", b, "b0")
	a.AddrAdd(t, "a0", "198.18.9.1/24")
	b.AddrAdd(t, "b0", "198.18.9.2/24")
	aMAC := a.Interface(t, "a0").HardwareAddr.String()
	bMAC := b.Interface(t, "b0").HardwareAddr.String()

	dir := t.TempDir()
	hops := []explain.Hop{{Label: "client a0", Path: filepath.Join(dir, "a0.pcap")}, {Label: "server b0", Path: filepath.Join(dir, "b0.pcap")}}
	var caps []*capture.Capture
	for i, ns := range []*netnstest.NS{a, b} {
		c, err := capture.Start(ns.Name, []string{"a0", "b0"}[i], hops[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Stop() })
		caps = append(caps, c)
	}

	var ln net.Listener
	if err := b.Do(func() (err error) { ln, err = net.Listen("tcp", "198.18.9.2:8080"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
			served <- err
			return
		}
		_, err = io.WriteString(conn, "hello from b\n")
		served <- err
	}()
	var conn net.Conn
	if err := a.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", "198.18.9.2:8080", 5*time.Second)
		return
	}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "hello from a\n"); err != nil {
		t.Fatal(err)
	}
	// Once the reply is read, both captures have seen every frame above.
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "hello from b\n" {
		t.Fatalf("reply %q, %v", line, err)
	}
	conn.Close()
	if err := <-served; err != nil {
		t.Fatalf("server: %v", err)
	}
	for _, c := range caps {
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
	}

	var out bytes.Buffer
	if err := explain.Flow(&out, hops, netip.MustParseAddr("198.18.9.1"), netip.MustParseAddrPort("198.18.9.2:8080")); err != nil {
		t.Fatal(err)
	}
	o := out.String()
	sections := strings.Split(o, "\nhop ")
	if len(sections) != 3 {
		t.Fatalf("want 2 hop sections:\n%s", o)
	}
	fwd, rev := aMAC+" > "+bMAC, bMAC+" > "+aMAC
	for i, sec := range sections[1:] {
		for _, w := range [][]string{
			{"SYN ", fwd, "198.18.9.1:", " > 198.18.9.2:8080"},
			{"SYN-ACK ", rev, "198.18.9.2:8080 > 198.18.9.1:"},
			{"request ", fwd, " > 198.18.9.2:8080"},
			{"response ", rev, "198.18.9.2:8080 > "},
		} {
			found := false
			for _, l := range strings.Split(sec, "\n") {
				ok := strings.HasPrefix(strings.TrimSpace(l)+" ", w[0])
				for _, p := range w[1:] {
					ok = ok && strings.Contains(l, p)
				}
				found = found || ok
			}
			if !found {
				t.Errorf("hop %d: no row %q", i+1, w)
			}
		}
	}
	if !strings.Contains(sections[2], "unchanged") {
		t.Errorf("hop 2 SYN not marked unchanged")
	}
	if t.Failed() {
		t.Logf("output:\n%s", o)
	}
}
