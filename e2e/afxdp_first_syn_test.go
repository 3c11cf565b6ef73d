//go:build linux

package e2e

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestFirstSYN: the first connection to a service a user has just added
// completes without a SYN retransmission, on a fresh uvsd, on every
// backend. Each round adds a NAT service (uvsadm -A, then -a, as the labs
// and the seeds' scripts do) whose real server answers on a port no
// earlier service used, and connects at once: the SYN-ACK is the first
// frame of that real server's address and port to reach the director, so
// uvsd must already own it (XDP program, packet filter, kernel hooks) when
// uvsadm returns. If it does not, the director's kernel forwards the
// SYN-ACK unrewritten, the client drops it and retransmits its SYN after
// 1 s (what issue 17 saw in 2 of 3 fresh `uvs-lab up nat` runs on AF_XDP).
//
// Two figures, neither a time: the client's retransmissions on the
// connection (TCP_INFO), and the director kernel's forwarded datagrams,
// which stay 0 since every frame of the test is uvsd's.
func TestFirstSYN(t *testing.T) {
	for _, io := range []string{"afxdp", "afpacket"} {
		t.Run(io, func(t *testing.T) {
			t.Setenv("UVS_E2E_IO", io) // startUVSDArgs passes it as --io
			l := newNATLab(t)
			const rounds, base = 8, 9100
			rs := l.rs[0]
			for i := range rounds {
				listenAccept(t, rs, base+i)
			}
			startUVSDArgs(t, l.dir)
			for i := range rounds {
				vip := "10.0.1.100:" + strconv.Itoa(base+i)
				mustUVSADM(t, l.dir, "-A", "-t", vip, "-s", "rr")
				mustUVSADM(t, l.dir, "-a", "-t", vip, "-r", "10.0.2.11:"+strconv.Itoa(base+i), "-m")
				if n := connectRetrans(t, l.cli, vip); n != 0 {
					t.Errorf("round %d: the first connection to %s, added just before, retransmitted %d time(s) (director's kernel forwarded %d datagrams); the director now:\n%s",
						i, vip, n, forwarded(t, l.dir), directorState(l.dir))
				}
			}
			if n := forwarded(t, l.dir); n != 0 {
				t.Errorf("the director's kernel forwarded %d datagrams of uvsd's connections (IpForwDatagrams)", n)
			}
		})
	}
}

// TestWorkersNotPinned: no thread of uvsd is confined to fewer CPUs than
// uvsd may use, on either backend, with a worker per CPU. A worker pinned
// to one CPU cannot leave it when other processes load that CPU, and the
// frames in its ring wait with it. That was TestFirstSYN's flake on a
// loaded CI machine (engineers' benchmarks at nice -20 beside the tests):
// a SYN-ACK sat 2.2 s in one worker's ring while the other worker
// forwarded the client's SYN retransmissions at once, and a client
// retransmitted its SYN up to 5 times; the pinned worker's thread spent
// 0.8 s of 2.6 s, and 0.4 s of 0.5 s, waiting in its CPU's run queue
// (/proc/PID/task/TID/schedstat). Unpinned, the scheduler moves it to a
// CPU that has room.
func TestWorkersNotPinned(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	if all.Count() < 2 {
		if os.Getenv("CI") != "" {
			t.Fatalf("the test may use %d CPU, and CI must run it: CI machines have two", all.Count())
		}
		t.Skipf("the test may use %d CPU: there is nothing to pin a worker away from", all.Count())
	}
	for _, io := range []string{"afxdp", "afpacket"} {
		t.Run(io, func(t *testing.T) {
			t.Setenv("UVS_E2E_IO", io) // startUVSDArgs passes it as --io
			l := newNATLab(t)
			u := startUVSDArgs(t, l.dir, "--workers", "2")
			// Frames through both workers first: each has run.
			rs := l.rs[0]
			for i := range 4 {
				port := 9200 + i
				listenAccept(t, rs, port)
				vip := "10.0.1.100:" + strconv.Itoa(port)
				mustUVSADM(t, l.dir, "-A", "-t", vip, "-s", "rr")
				mustUVSADM(t, l.dir, "-a", "-t", vip, "-r", "10.0.2.11:"+strconv.Itoa(port), "-m")
				connectRetrans(t, l.cli, vip)
			}
			pid := u.proc.Cmd.Process.Pid
			tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
			if err != nil {
				t.Fatalf("uvsd's threads: %v", err)
			}
			for _, task := range tasks {
				tid, err := strconv.Atoi(task.Name())
				if err != nil {
					continue
				}
				var set unix.CPUSet
				if err := unix.SchedGetaffinity(tid, &set); err != nil {
					continue // the thread exited
				}
				if set != all {
					t.Errorf("uvsd's thread %d may run on %d of the %d CPUs uvsd may use", tid, set.Count(), all.Count())
				}
			}
		})
	}
}

// listenAccept listens on port in ns and accepts (and closes) connections
// until the test ends.
func listenAccept(t *testing.T, ns *netnstest.NS, port int) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", ":"+strconv.Itoa(port))
		return err
	}); err != nil {
		t.Fatalf("listen on %d: %v", port, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
}

// connectRetrans connects from ns to addr and returns how many segments
// the connection retransmitted (its SYN, if connecting took one).
func connectRetrans(t *testing.T, ns *netnstest.NS, addr string) uint32 {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, 10*time.Second)
		return err
	}); err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var ierr error
	if err := raw.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil || ierr != nil {
		t.Fatalf("TCP_INFO of the connection to %s: %v %v", addr, err, ierr)
	}
	return info.Total_retrans
}

// forwarded returns the IPv4 datagrams the kernel of ns forwarded
// (IpForwDatagrams in /proc/net/snmp).
func forwarded(t *testing.T, ns *netnstest.NS) int {
	t.Helper()
	out := ns.Exec(t, "cat", "/proc/net/snmp")
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "Ip:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "ForwDatagrams" && i < len(f) {
				n, err := strconv.Atoi(f[i])
				if err != nil {
					t.Fatalf("IpForwDatagrams %q: %v", f[i], err)
				}
				return n
			}
		}
	}
	t.Fatalf("no Ip: ForwDatagrams in /proc/net/snmp:\n%s", out)
	return 0
}
