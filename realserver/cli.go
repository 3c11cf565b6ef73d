package realserver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// Env is what the uvs-rs command needs from the outside world.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	// Sysctls defaults to ProcSys{} (the calling thread's namespace).
	Sysctls Sysctls
	// Executable is the binary re-executed to start the decapsulator in
	// the background; empty means os.Executable().
	Executable string
}

func (e Env) sysctls() Sysctls {
	if e.Sysctls == nil {
		return ProcSys{}
	}
	return e.Sysctls
}

// Options are the parsed flags of a uvs-rs subcommand.
type Options struct {
	StateBase      string       // --state-dir
	VIPs           []netip.Addr // --vip, repeatable
	Dev            string       // --dev
	GUEPort        uint16       // --gue-port
	Foreground     bool         // --foreground
	ForceUserspace bool         // --force-userspace
	NoSysctl       bool         // --no-sysctl
	NoOffload      bool         // --no-offload
	NoBPF          bool         // --no-bpf
	Log            string       // --log
	ReadyFD        int          // --ready-fd (internal: daemon readiness pipe)
}

// ErrUsage is wrapped by every command-line error.
var ErrUsage = errors.New("usage")

// Usage is the help text.
const Usage = `usage:
  uvs-rs dr up    --vip VIP [--vip VIP ...] [--dev lo] [--no-sysctl]
  uvs-rs dr down  [--vip VIP ...]            (no --vip: every DR VIP)
  uvs-rs tun up   --vip VIP [--vip VIP ...] [--dev uvstun0] [--gue-port P]
                  [--foreground] [--force-userspace] [--no-sysctl] [--no-offload]
                  [--no-bpf] [--log FILE]
  uvs-rs tun down [--vip VIP ...]            (no --vip: the whole tunnel)
  uvs-rs status
every subcommand takes --state-dir DIR (default /run/uvs-rs); state is kept
per network namespace in DIR/netns-<inode>/.

dr up     puts each VIP on dev (/32 or /128) and sets arp_ignore=1 and
          arp_announce=2 on all and dev; dr down undoes it, restoring the
          previous sysctl values once no VIP is left.
tun up    with the kernel's ipip module: puts the VIPs on tunl0 and steps
          aside. Without it (or with --force-userspace): creates a TUN
          device holding the VIPs, sets rp_filter=0, arp_ignore=1,
          arp_announce=2, and decapsulates IPIP (protocol 4 and 41) from a
          raw socket and GUE from UDP port P into it, in a background
          process (--foreground keeps it attached). IPv4-in-IPv4 to a VIP
          is decapsulated in the kernel instead, by a tc BPF program on the
          ingress of every Ethernet interface that is up (their rp_filter
          set to 0); --no-bpf leaves it to user space too.
tun down  removes VIPs; with none left it stops the decapsulator and
          restores the sysctls.
status    prints what is configured in this namespace.
`

// vipList is a repeatable --vip flag; it also takes comma-separated lists.
type vipList struct{ vips *[]netip.Addr }

func (v vipList) String() string {
	if v.vips == nil {
		return ""
	}
	s := make([]string, len(*v.vips))
	for i, a := range *v.vips {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func (v vipList) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(f))
		if err != nil {
			return err
		}
		a = a.Unmap()
		if a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
			return fmt.Errorf("%s: not usable as a VIP", a)
		}
		*v.vips = append(*v.vips, a)
	}
	return nil
}

// parse parses the flags of one subcommand.
func parse(name string, args []string, o *Options, tun, up bool) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.StateBase, "state-dir", DefaultStateBase, "state directory")
	fs.Var(vipList{&o.VIPs}, "vip", "virtual IP (repeatable)")
	port := new(uint)
	o.ReadyFD = -1
	switch {
	case up && tun:
		fs.BoolVar(&o.NoSysctl, "no-sysctl", false, "leave the sysctls alone")
		fs.StringVar(&o.Dev, "dev", "uvstun0", "TUN device name")
		fs.UintVar(port, "gue-port", 0, "GUE UDP port (0: none)")
		fs.BoolVar(&o.Foreground, "foreground", false, "do not daemonise")
		fs.BoolVar(&o.ForceUserspace, "force-userspace", false, "decapsulate in userspace even with the ipip module")
		fs.BoolVar(&o.NoOffload, "no-offload", false, "TUN device without virtio_net_hdr: one write per decapsulated packet, no coalescing")
		fs.BoolVar(&o.NoBPF, "no-bpf", false, "decapsulate IPIP in user space only: attach no tc BPF program")
		fs.StringVar(&o.Log, "log", "", "daemon log file")
		fs.IntVar(&o.ReadyFD, "ready-fd", -1, "internal")
	case up:
		fs.BoolVar(&o.NoSysctl, "no-sysctl", false, "leave the sysctls alone")
		fs.StringVar(&o.Dev, "dev", "lo", "device that holds the VIPs")
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s: %w: %w", name, ErrUsage, err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%s: %w: unexpected argument %q", name, ErrUsage, fs.Arg(0))
	}
	if *port > 65535 {
		return fmt.Errorf("%s: %w: --gue-port %d out of range", name, ErrUsage, *port)
	}
	o.GUEPort = uint16(*port)
	if up && len(o.VIPs) == 0 {
		return fmt.Errorf("%s: %w: --vip is required", name, ErrUsage)
	}
	if o.Dev != "" && (len(o.Dev) > 15 || strings.ContainsAny(o.Dev, "/ \t") || o.Dev == "all" || o.Dev == "default") {
		return fmt.Errorf("%s: %w: bad device name %q", name, ErrUsage, o.Dev)
	}
	return nil
}

// Run executes one uvs-rs command line (without the program name). Errors
// wrapping ErrUsage mean the command line was wrong.
func Run(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", ErrUsage)
	}
	var o Options
	switch args[0] {
	case "help", "-h", "-help", "--help":
		_, err := io.WriteString(env.Stdout, Usage)
		return err
	case "status":
		if err := parse("status", args[1:], &o, false, false); err != nil {
			return err
		}
		return status(env, &o)
	case "dr", "tun":
		if len(args) < 2 {
			return fmt.Errorf("%s: %w: want up or down", args[0], ErrUsage)
		}
		tun := args[0] == "tun"
		up := args[1] == "up"
		if !up && args[1] != "down" {
			return fmt.Errorf("%s: %w: want up or down, not %q", args[0], ErrUsage, args[1])
		}
		if err := parse(args[0]+" "+args[1], args[2:], &o, tun, up); err != nil {
			return err
		}
		switch {
		case tun && up:
			return tunUp(ctx, env, &o)
		case tun:
			return tunDown(env, &o)
		case up:
			return drUp(env, &o)
		default:
			return drDown(env, &o)
		}
	}
	return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
}
