package director

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/dataplane/khook"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/testbin"
	"github.com/uvs-lb/uvs/internal/wait"
)

func TestParseIO(t *testing.T) {
	for in, want := range map[string]string{"": DefaultIO, "afpacket": IOAFPacket, "afxdp": IOAFXDP, "auto": IOAuto} {
		if got, err := ParseIO(in); err != nil || got != want {
			t.Errorf("ParseIO(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseIO("xdp"); err == nil || !strings.Contains(err.Error(), `"xdp"`) {
		t.Errorf("ParseIO(xdp): %v", err)
	}
}

// buildUVSD builds uvsd into a temporary directory.
func buildUVSD(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := testbin.Build(dir, "../cmd/uvsd"); err != nil {
		t.Fatalf("building uvsd: %v", err)
	}
	return filepath.Join(dir, "uvsd")
}

// waitOutput waits until the process printed want, failing if it exits
// first or after 10 s.
func waitOutput(t *testing.T, p *netnstest.Proc, want string) {
	t.Helper()
	exited := false
	wait.For(t, 10*time.Second, func() bool {
		if strings.Contains(p.Output(), want) {
			return true
		}
		select {
		case <-p.Done():
			exited = true
			return true
		default:
			return false
		}
	}, "%q in uvsd's output:\n%v", want, wait.Lazy(func() any { return p.Output() }))
	if exited && !strings.Contains(p.Output(), want) {
		t.Fatalf("uvsd exited before %q: %v\n%s", want, p.Err(), p.Output())
	}
}

// TestXDPLifetime runs uvsd with the AF_XDP backend: it attaches its
// program natively to the veth, answers ARP for the VIP through AF_XDP,
// and leaves no program behind after SIGTERM, after SIGKILL (bpf_link), and
// in generic mode; --io auto picks AF_XDP on veth.
func TestXDPLifetime(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	uvsd := buildUVSD(t)
	cli, dir := netnstest.New(t, "xcli"), netnstest.New(t, "xdir")
	netnstest.Veth(t, cli, "c0", dir, "d0")
	cli.AddrAdd(t, "c0", "10.9.0.2/24")
	dir.AddrAdd(t, "d0", "10.9.0.1/24")
	mac := dir.Interface(t, "d0").HardwareAddr.String()
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("-A -u 10.9.0.100:9000 -s rr\n-a -u 10.9.0.100:9000 -r 10.9.0.3:9000 -g -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	attached := func() string {
		out := dir.IP(t, "-d", "link", "show", "d0")
		if i := strings.Index(out, "prog/xdp"); i >= 0 {
			return out[i:]
		}
		return ""
	}
	start := func(args ...string) *netnstest.Proc {
		t.Helper()
		p := dir.Start(t, append([]string{uvsd, "--rules", rules, "--control", "", "--iface", "d0"}, args...)...)
		waitOutput(t, p, "serving")
		return p
	}
	stop := func(p *netnstest.Proc, sig syscall.Signal) {
		t.Helper()
		if err := p.Cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("uvsd did not exit after %v:\n%s", sig, p.Output())
		}
		wait.For(t, 5*time.Second, func() bool { return attached() == "" },
			"the XDP program to be detached after %v:\n%v\n%v", sig, wait.Lazy(func() any { return attached() }), wait.Lazy(func() any { return p.Output() }))
	}

	p := start("--io", "afxdp")
	if !strings.Contains(p.Output(), `"backend": "afxdp", "xdp": ["d0:native"]`) {
		t.Fatalf("want native AF_XDP on d0:\n%s", p.Output())
	}
	if a := attached(); !strings.Contains(a, "uvs_xdp") {
		t.Fatalf("no uvs_xdp program on d0: %q", a)
	}
	// The client resolves the VIP: the ARP request goes through AF_XDP
	// and uvsd answers with d0's MAC.
	wait.For(t, 5*time.Second, func() bool {
		_, _ = cli.Run("ping", "-c1", "-W1", "10.9.0.100") // unanswered; resolves the VIP first
		return strings.Contains(cli.IP(t, "neigh", "show", "10.9.0.100"), mac)
	}, "an ARP answer for the VIP: %v\n%v", wait.Lazy(func() any { return cli.IP(t, "neigh", "show") }), wait.Lazy(func() any { return p.Output() }))
	// The director's own address still answers (ARP and ICMP pass).
	cli.Exec(t, "ping", "-c1", "-W2", "10.9.0.1")
	stop(p, syscall.SIGTERM)
	if err := p.Err(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Output())
	}

	stop(start("--io", "afxdp"), syscall.SIGKILL)

	p = start("--io", "auto", "--xdp-mode", "generic")
	if !strings.Contains(p.Output(), `"xdp": ["d0:generic"]`) {
		t.Fatalf("want generic AF_XDP on d0:\n%s", p.Output())
	}
	if a := attached(); !strings.Contains(dir.IP(t, "-d", "link", "show", "d0"), "xdpgeneric") {
		t.Fatalf("not in generic mode: %q", a)
	}
	stop(p, syscall.SIGTERM)
}

// failingIO is packet I/O whose reads fail after the first one.
type failingIO struct {
	dataplane.PacketIO
	reads int
}

func (f *failingIO) ReadBatch(frames []dataplane.Frame) (int, error) {
	if f.reads++; f.reads > 1 {
		return 0, errors.New("injected read failure")
	}
	return f.PacketIO.ReadBatch(frames)
}

// workerFailsEnv makes the test binary run uvsd (director.Main) with
// failing workers instead of the tests (TestMain);
// TestWorkerFailureStopsUVSD sets it in a child process.
const workerFailsEnv = "UVS_TEST_WORKER_FAILS"

// TestMain runs the tests, or, in TestWorkerFailureStopsUVSD's child
// process, Main with every worker's reads failing after the first, and
// exits with Main's status.
func TestMain(m *testing.M) {
	if args := os.Getenv(workerFailsEnv); args != "" {
		testWorkerIO = func(io dataplane.PacketIO) dataplane.PacketIO { return &failingIO{PacketIO: io} }
		os.Exit(Main(strings.Fields(args), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestWorkerFailureStopsUVSD: a packet worker that stops with an error
// stops uvsd on both backends: exit status 1, one log line naming the
// worker and its error (no stack trace), and the kernel hooks removed.
func TestWorkerFailureStopsUVSD(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "nft")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("-A -t 10.9.1.100:80 -s rr\n-a -t 10.9.1.100:80 -r 10.9.1.3:80 -g -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, io := range []string{IOAFPacket, IOAFXDP} {
		t.Run(io, func(t *testing.T) {
			cli, dir := netnstest.New(t, "wcli"), netnstest.New(t, "wdir")
			netnstest.Veth(t, cli, "c0", dir, "d0")
			dir.AddrAdd(t, "d0", "10.9.1.1/24")
			args := "--rules " + rules + " --control= --iface d0 --io " + io
			p := dir.Start(t, "env", workerFailsEnv+"="+args, self)
			select {
			case <-p.Done():
			case <-time.After(20 * time.Second):
				t.Fatalf("uvsd still runs 20s after its worker failed:\n%s", p.Output())
			}
			var ee *exec.ExitError
			if err := p.Err(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1\n%s", err, p.Output())
			}
			var failed []string
			for _, line := range strings.Split(p.Output(), "\n") {
				if strings.Contains(line, "injected read failure") {
					failed = append(failed, line)
				}
				if strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "goroutine ") {
					t.Errorf("stack trace in the log: %q", line)
				}
			}
			if len(failed) != 1 || !strings.Contains(failed[0], "packet worker 0 ("+io+") stopped") {
				t.Fatalf("want one line naming worker 0 and its error, got %q\n%s", failed, p.Output())
			}
			if out := dir.Exec(t, "nft", "list", "tables"); strings.Contains(out, khook.TableName) {
				t.Fatalf("nftables table left after the failure: %s", out)
			}
		})
	}
}

// TestIOAuto: a uvsd started without --io (DefaultIO, auto) serves a veth
// with AF_XDP attached natively, and an interface whose driver has no
// native XDP (a bridge) with AF_PACKET, leaving no program behind; with
// no interface at start it takes AF_PACKET.
func TestIOAuto(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	uvsd := buildUVSD(t)
	cli, dir := netnstest.New(t, "acli"), netnstest.New(t, "adir")
	netnstest.Veth(t, cli, "c0", dir, "d0")
	netnstest.Veth(t, cli, "c1", dir, "p1")
	dir.IP(t, "link", "add", "br0", "type", "bridge")
	dir.IP(t, "link", "set", "p1", "master", "br0")
	dir.LinkUp(t, "br0")
	dir.AddrAdd(t, "d0", "10.9.2.1/24")
	dir.AddrAdd(t, "br0", "10.9.3.1/24")
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("-A -t 10.9.2.100:80 -s rr\n-a -t 10.9.2.100:80 -r 10.9.2.3:80 -g -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	xdpOn := func(dev string) bool { return strings.Contains(dir.IP(t, "-d", "link", "show", dev), "prog/xdp") }
	run := func(t *testing.T, want string, args ...string) {
		t.Helper()
		// No --io and no $UVS_IO: the default.
		p := dir.Start(t, append([]string{"env", "-u", IOEnv, uvsd, "--rules", rules, "--control", ""}, args...)...)
		waitOutput(t, p, "serving")
		if !strings.Contains(p.Output(), `"io": "`+want+`"`) {
			t.Errorf("want the %s backend:\n%s", want, p.Output())
		}
		if want == IOAFXDP && !strings.Contains(p.Output(), `"xdp": ["d0:native"]`) {
			t.Errorf("want AF_XDP attached natively to d0:\n%s", p.Output())
		}
		if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("uvsd did not exit after SIGTERM:\n%s", p.Output())
		}
		if err := p.Err(); err != nil {
			t.Fatalf("exit: %v\n%s", err, p.Output())
		}
		for _, dev := range []string{"d0", "br0"} {
			if xdpOn(dev) {
				t.Errorf("an XDP program is left on %s", dev)
			}
		}
	}
	t.Run("veth", func(t *testing.T) { run(t, IOAFXDP, "--iface", "d0") })
	t.Run("bridge", func(t *testing.T) { run(t, IOAFPacket, "--iface", "br0") })
	t.Run("veth and bridge", func(t *testing.T) { run(t, IOAFPacket, "--iface", "d0,br0") })
	t.Run("no interface", func(t *testing.T) { run(t, IOAFPacket, "--iface", "nosuch0") })
}
