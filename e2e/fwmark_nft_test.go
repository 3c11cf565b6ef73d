package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFWMarkNft is TestFWMarkPersistence with the mark set by a native
// nftables rule instead of iptables: uvsd reads the prerouting base chain
// over netlink, evaluates "ip daddr VIP tcp dport { 80, 443 } meta mark
// set 10" itself, and the firewall-mark service serves both ports.
func TestFWMarkNft(t *testing.T) {
	l := newNATLab(t)
	l.cli.AddrAdd(t, "c0", "10.0.1.3/24")
	rules := filepath.Join(t.TempDir(), "mark.nft")
	if err := os.WriteFile(rules, []byte(`table ip mangle {
	chain prerouting {
		type filter hook prerouting priority mangle;
		ip daddr 10.0.1.200 tcp dport { 80, 443 } meta mark set 10
	}
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	l.dir.Exec(t, "nft", "-f", rules)
	startUVSD(t, l.dir, `-A -f 10 -s rr -p
-a -f 10 -r 10.0.2.11 -m -w 1
-a -f 10 -r 10.0.2.12 -m -w 1
`)
	get := func(src, url string) string {
		t.Helper()
		out, err := l.cli.Run("curl", "-sS", "--max-time", "8", "--interface", src, url)
		if err != nil {
			t.Fatalf("curl --interface %s %s: %v: %s", src, url, err, out)
		}
		return out
	}
	var first [2]string
	for i, src := range []string{"10.0.1.2", "10.0.1.3"} {
		first[i] = get(src, "http://10.0.1.200/")
		for _, url := range []string{"http://10.0.1.200:443/", "http://10.0.1.200/", "http://10.0.1.200:443/"} {
			if got := get(src, url); got != first[i] {
				t.Fatalf("client %s: %s answered by %q, but its first request by %q: persistence broken", src, url, got, first[i])
			}
		}
	}
	if first[0] == first[1] {
		t.Fatalf("both clients went to %q: rr should have given the second client's template the other server", first[0])
	}
	out := mustUVSADM(t, l.dir, "-Lnc")
	if !strings.Contains(out, "IP ") || !strings.Contains(out, "0.0.0.10:0") {
		t.Fatalf("uvsadm -Lnc shows no PFWMC template (IP ... 0.0.0.10:0):\n%s", out)
	}
}

// TestFWMarkNftInet: one inet table marks IPv4 VIPs of a named set
// through a jump to a regular chain, and an IPv6 VIP directly; an IPv4
// and an IPv6 firewall-mark service serve them.
func TestFWMarkNftInet(t *testing.T) {
	l := newNATLab(t)
	rules := filepath.Join(t.TempDir(), "mark.nft")
	if err := os.WriteFile(rules, []byte(`table inet lb {
	set vips4 { type ipv4_addr; elements = { 10.0.1.200, 10.0.1.201 } }
	chain pre {
		type filter hook prerouting priority filter;
		ip daddr @vips4 tcp dport { 80, 443 } jump mark10
		ip6 daddr fd00:1::200 tcp dport 80-443 meta mark set 20
	}
	chain mark10 {
		meta mark set 10
	}
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	l.dir.Exec(t, "nft", "-f", rules)
	startUVSD(t, l.dir, `-A -f 10 -s rr
-a -f 10 -r 10.0.2.11 -m -w 1
-a -f 10 -r 10.0.2.12 -m -w 1
-A -f 20 -6 -s rr
-a -f 20 -6 -r fd00:2::11 -m -w 1
-a -f 20 -6 -r fd00:2::12 -m -w 1
`)
	seen := map[string]int{}
	for _, url := range []string{"http://10.0.1.200/", "http://10.0.1.201:443/", "http://[fd00:1::200]/", "http://[fd00:1::200]:443/",
		"http://10.0.1.201/", "http://10.0.1.200:443/", "http://[fd00:1::200]/", "http://[fd00:1::200]:443/"} {
		seen[curl(t, l.cli, url)]++
	}
	if len(seen) != 2 {
		t.Fatalf("answers %v: want both real servers (rr)", seen)
	}
	out := mustUVSADM(t, l.dir, "-Ln")
	for _, want := range []string{"FWM  10 rr", "FWM  20 IPv6 rr"} {
		if !strings.Contains(out, want) {
			t.Errorf("uvsadm -Ln lacks %q:\n%s", want, out)
		}
	}
}
