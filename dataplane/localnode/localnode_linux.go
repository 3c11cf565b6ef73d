package localnode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Device is an open local-delivery device. Deliver may be called from any
// number of goroutines; Close must not run concurrently with them.
type Device struct {
	fd    int
	name  string
	index int
}

// Open creates the TUN device name (DefaultName if empty) in the calling
// thread's network namespace, sets its sysctls (see the package
// documentation) and brings it up. It fails if a device of that name
// exists.
func Open(name string) (*Device, error) {
	if name == "" {
		name = DefaultName
	}
	if len(name) >= unix.IFNAMSIZ || strings.ContainsAny(name, "/ ") {
		return nil, fmt.Errorf("localnode: bad device name %q", name)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("localnode: open /dev/net/tun: %w", err)
	}
	d := &Device{fd: fd, name: name}
	if err := d.setup(); err != nil {
		unix.Close(fd) // the device goes with its only descriptor
		return nil, err
	}
	return d, nil
}

func (d *Device) setup() error {
	ifr, err := unix.NewIfreq(d.name)
	if err != nil {
		return fmt.Errorf("localnode: device %s: %w", d.name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(d.fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("localnode: create TUN device %s: %w", d.name, err)
	}
	// Before the device is up, so that IPv6 gives it no link-local
	// address: 1 is IN6_ADDR_GEN_MODE_NONE. Without IPv6 in the
	// namespace there is nothing to turn off.
	if err := writeSysctl("ipv6", d.name, "addr_gen_mode", "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := writeSysctl("ipv4", d.name, "rp_filter", "0"); err != nil {
		return err
	}
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("localnode: socket: %w", err)
	}
	defer unix.Close(s)
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("localnode: flags of %s: %w", d.name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("localnode: bring %s up: %w", d.name, err)
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr); err != nil {
		return fmt.Errorf("localnode: index of %s: %w", d.name, err)
	}
	d.index = int(ifr.Uint32())
	return nil
}

// RPFilter returns the sysctl changes
// the namespace needs for the device named dev to deliver IPv4 packets,
// in the order to apply them; none when conf/all/rp_filter is 0.
//
// Open sets the device's own rp_filter to 0. That is not enough while
// conf/all/rp_filter is set: the kernel filters with the larger of the
// two, and reverse-path filtering, loose mode included, drops every
// packet received on a device without an address (fib_validate_source).
// So all goes to 0, after every interface's own value and default's (for
// interfaces made later) are raised to at least all's: each interface
// keeps the filtering it had. The caller restores them on exit.
//
// accept_local is not needed: the sources of delivered packets are
// clients, not the director's own addresses.
func RPFilter(dev string) ([]Sysctl, error) {
	const dir = "/proc/sys/net/ipv4/conf"
	all, err := readInt(filepath.Join(dir, "all", "rp_filter"))
	if err != nil {
		return nil, fmt.Errorf("localnode: %w", err)
	}
	if all == 0 {
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("localnode: %w", err)
	}
	var out []Sysctl
	for _, e := range ents {
		n := e.Name()
		if n == "all" || n == dev || !e.IsDir() {
			continue
		}
		v, err := readInt(filepath.Join(dir, n, "rp_filter"))
		if err != nil {
			continue // an interface gone meanwhile
		}
		if v < all {
			out = append(out, Sysctl{Name: "net/ipv4/conf/" + n + "/rp_filter", Value: strconv.Itoa(all)})
		}
	}
	return append(out, Sysctl{Name: "net/ipv4/conf/all/rp_filter", Value: "0"}), nil
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// writeSysctl sets net.<family>.conf.<dev>.<key> in the calling thread's
// namespace.
func writeSysctl(family, dev, key, value string) error {
	p := filepath.Join("/proc/sys/net", family, "conf", dev, key)
	if err := os.WriteFile(p, []byte(value), 0); err != nil {
		return fmt.Errorf("localnode: set %s=%s: %w", p, value, err)
	}
	return nil
}

// Name returns the device's name.
func (d *Device) Name() string { return d.name }

// Index returns the device's interface index.
func (d *Device) Index() int { return d.index }

// Deliver hands one IP packet (IPv4 or IPv6, no link-layer header) to the
// namespace's stack as if received on the device: one write(2), no
// allocation. The kernel takes the packet whole or not at all.
func (d *Device) Deliver(pkt []byte) error {
	_, err := unix.Write(d.fd, pkt)
	return err
}

// Close closes the descriptor, which removes the device.
func (d *Device) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	if err != nil {
		return fmt.Errorf("localnode: close %s: %w", d.name, err)
	}
	return nil
}
