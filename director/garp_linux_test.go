package director

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// capture reads every frame arriving on an interface of a namespace.
type capture struct {
	fd     int
	mu     sync.Mutex
	frames [][]byte
}

func startCapture(t *testing.T, ns *netnstest.NS, dev string) *capture {
	t.Helper()
	ifindex := ns.Interface(t, dev).Index
	c := &capture{fd: -1}
	proto := int(htons(unix.ETH_P_ALL))
	if err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		c.fd = fd
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex})
	}); err != nil {
		t.Fatalf("capture on %s: %v", dev, err)
	}
	tv := unix.Timeval{Usec: 100000}
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, _, err := unix.Recvfrom(c.fd, buf, 0)
			if err != nil {
				continue
			}
			c.mu.Lock()
			c.frames = append(c.frames, bytes.Clone(buf[:n]))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		unix.Close(c.fd)
	})
	return c
}

// count returns how many frames equal to f arrived.
func (c *capture) count(f []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, g := range c.frames {
		if bytes.Equal(g, f) {
			n++
		}
	}
	return n
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// TestAnnounceNetns sends a Director's takeover announcements from one
// namespace and captures them in another: 5 gratuitous ARPs and 5
// unsolicited NAs at once, 5 more of each after the delay; the peer's
// kernel moves its (stale) neighbour entries for the VIPs to the
// director's MAC.
func TestAnnounceNetns(t *testing.T) {
	dir, peer := netnstest.New(t, "gdir"), netnstest.New(t, "gpeer")
	netnstest.Veth(t, dir, "d0", peer, "p0")
	dir.AddrAdd(t, "d0", "10.7.0.1/24")
	peer.AddrAdd(t, "p0", "10.7.0.2/24")
	dir.AddrAdd(t, "d0", "fd00:7::1/64")
	peer.AddrAdd(t, "p0", "fd00:7::2/64")
	old := "02:00:00:00:00:99"
	for _, vip := range []string{"10.7.0.100", "fd00:7::100"} {
		peer.IP(t, "neigh", "replace", vip, "lladdr", old, "dev", "p0", "nud", "stale")
	}
	ifc := dir.Interface(t, "d0")
	mac := [6]byte(ifc.HardwareAddr)
	capt := startCapture(t, peer, "p0")

	d := &Director{log: zap.NewNop(), garpDelay: 300 * time.Millisecond}
	d.host.Store(&dataplane.Host{Ifaces: map[int]dataplane.Iface{ifc.Index: {Index: ifc.Index, Name: "d0", MAC: mac}}})
	d.newSender = func() (frameSender, error) {
		var s frameSender
		err := dir.Do(func() (err error) {
			s, err = openSender()
			return err
		})
		return s, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v4, v6 := netip.MustParseAddr("10.7.0.100"), netip.MustParseAddr("fd00:7::100")
	d.announce(ctx, []netip.Addr{v4, v6})
	garp, na := garpFrame(v4, mac), garpFrame(v6, mac)
	wait.For(t, 5*time.Second, func() bool { return capt.count(garp) == 2*garpRepeat && capt.count(na) == 2*garpRepeat },
		"%d gratuitous ARPs and %d NAs on p0 (have %v and %v)", 2*garpRepeat, 2*garpRepeat,
		wait.Lazy(func() any { return capt.count(garp) }), wait.Lazy(func() any { return capt.count(na) }))
	want := ifc.HardwareAddr.String()
	for _, vip := range []string{"10.7.0.100", "fd00:7::100"} {
		wait.For(t, 5*time.Second, func() bool { return strings.Contains(peer.IP(t, "neigh", "show", vip, "dev", "p0"), want) },
			"the peer's neighbour entry for %s to move to %s: %v", vip, want,
			wait.Lazy(func() any { return peer.IP(t, "neigh", "show", vip, "dev", "p0") }))
	}
}
