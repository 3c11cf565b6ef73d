package director

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uvs-lb/uvs/internal/netnstest"
	"github.com/uvs-lb/uvs/internal/wait"
)

// TestVRRPFollowNetns runs uvsd --rules --vrrp in a namespace and moves
// the followed VIP with ip addr as keepalived would: uvsd logs each role
// change once, and the kernel hooks' table holds the VIP's service all
// along (a standby VIP's frames go to the director's own stack through
// the local-delivery device), so that nothing there changes when the VIP
// moves.
func TestVRRPFollowNetns(t *testing.T) {
	netnstest.SkipIfNotRoot(t)
	netnstest.RequireTool(t, "nft")
	uvsd := buildUVSD(t)
	cli, dir := netnstest.New(t, "vcli"), netnstest.New(t, "vdir")
	netnstest.Veth(t, cli, "c0", dir, "d0")
	cli.AddrAdd(t, "c0", "10.9.0.2/24")
	dir.AddrAdd(t, "d0", "10.9.0.1/24")
	tmp := t.TempDir()
	rules := filepath.Join(tmp, "rules")
	conf := filepath.Join(tmp, "keepalived.conf")
	if err := os.WriteFile(rules, []byte("-A -t 10.9.0.239:8898 -s rr\n-a -t 10.9.0.239:8898 -r 10.9.0.3:8898 -g -w 1\n"+
		"-A -t 10.9.0.240:80 -s rr\n-a -t 10.9.0.240:80 -r 10.9.0.3:80 -g -w 1\n"+
		"-A -t 10.9.0.241:80 -s rr\n-a -t 10.9.0.241:80 -r 10.9.0.3:80 -g -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(`vrrp_instance VI_1 {
    state BACKUP
    interface d0
    virtual_router_id 51
    priority 99
    advert_int 1
    virtual_ipaddress {
        10.9.0.239
    }
}
vrrp_instance VI_2 {
    interface d0
    virtual_router_id 52
    virtual_ipaddress {
        10.9.0.241 dev lo
    }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	capt := startCapture(t, cli, "c0")
	p := dir.Start(t, uvsd, "--rules", rules, "--vrrp", conf, "--control", "", "--iface", "d0")
	waitOutput(t, p, "serving")
	if !strings.Contains(p.Output(), "VRRP instance VI_1: BACKUP (10.9.0.239 not on d0)") {
		t.Fatalf("no BACKUP line at start:\n%s", p.Output())
	}
	table := func() string { return dir.Exec(t, "nft", "list", "table", "netdev", "uvs") }
	// The hook's rules name the owned VIPs' addresses (10.9.0.239 is
	// 0x0a0900ef, 10.9.0.240 0x0a0900f0), however nft prints them.
	owns := func(vip, hex string) bool {
		s := table()
		return strings.Contains(s, vip) || strings.Contains(s, hex)
	}
	wait.For(t, 10*time.Second, func() bool { return owns("10.9.0.240", "0x0a0900f0") }, "the hooks to own the unfollowed VIP:\n%v",
		wait.Lazy(func() any { return table() }))
	if !owns("10.9.0.239", "0x0a0900ef") {
		t.Fatalf("the hooks do not own the standby VIP:\n%s", table())
	}

	dir.AddrAdd(t, "d0", "10.9.0.239/32")
	waitOutput(t, p, "VRRP instance VI_1: MASTER (10.9.0.239 added on d0)")
	if !owns("10.9.0.239", "0x0a0900ef") {
		t.Fatalf("the hooks do not own the held VIP:\n%s", table())
	}

	dir.IP(t, "addr", "del", "10.9.0.239/32", "dev", "d0")
	waitOutput(t, p, "VRRP instance VI_1: BACKUP (10.9.0.239 removed from d0)")
	if !owns("10.9.0.239", "0x0a0900ef") || !owns("10.9.0.240", "0x0a0900f0") {
		t.Errorf("the hooks let go of a VIP:\n%s", table())
	}
	if n := strings.Count(p.Output(), "VRRP instance VI_1:"); n != 3 {
		t.Errorf("%d role lines, want 3 (each change once):\n%s", n, p.Output())
	}

	// VI_2's VIP goes on lo, not a served interface: uvsd announces it on
	// d0, 5 gratuitous ARPs at once and 5 more after 5 s.
	garp := garpFrame(netip.MustParseAddr("10.9.0.241"), [6]byte(dir.Interface(t, "d0").HardwareAddr))
	if n := capt.count(garp); n != 0 {
		t.Fatalf("%d gratuitous ARPs for a VIP not held", n)
	}
	dir.AddrAdd(t, "lo", "10.9.0.241/32")
	waitOutput(t, p, "VRRP instance VI_2: MASTER (10.9.0.241 added on lo)")
	wait.For(t, 15*time.Second, func() bool { return capt.count(garp) == 2*garpRepeat }, "%d gratuitous ARPs for 10.9.0.241 on c0, have %v",
		2*garpRepeat, wait.Lazy(func() any { return capt.count(garp) }))
	wait.For(t, 10*time.Second, func() bool { return owns("10.9.0.241", "0x0a0900f1") }, "the hooks to own the held VIP on lo:\n%v", wait.Lazy(func() any { return table() }))
}
