package director

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/ipvsadm"
)

func applyRules(t *testing.T, st *control.State, rules string) {
	t.Helper()
	cmds, err := ipvsadm.ParseRules(strings.NewReader(rules), "rules")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ApplyAll(cmds); err != nil {
		t.Fatal(err)
	}
}

// TestBGPVIPs: a VIP is announced while one of its services has a real
// server of weight > 0; weight 0 everywhere (a failed checker with
// inhibit_on_failure, ipvsadm -e -w 0) or no real server withdraws it; a
// standby VIP (VRRP backup) and fwmark services are never announced.
func TestBGPVIPs(t *testing.T) {
	st := control.New(control.Options{})
	applyRules(t, st, `-A -t 10.0.0.1:80 -s mh
-a -t 10.0.0.1:80 -r 10.0.2.11:80 -g -w 1
-a -t 10.0.0.1:80 -r 10.0.2.12:80 -g -w 1
-A -t 10.0.0.1:443 -s mh
-A -t 10.0.0.2:80 -s rr
-a -t 10.0.0.2:80 -r 10.0.2.11:80 -g -w 0
-A -t [fd00::100]:80 -s mh
-a -t [fd00::100]:80 -r [fd00:2::11]:80 -g -w 3
-A -f 7 -s rr
-a -f 7 -r 10.0.2.11:0 -g -w 1
-A -u 10.0.0.3:53 -s rr
`)
	want := func(vs ...string) []netip.Addr {
		var out []netip.Addr
		for _, v := range vs {
			out = append(out, netip.MustParseAddr(v))
		}
		return out
	}
	if got := bgpVIPs(st.Services(), nil); !slices.Equal(got, want("10.0.0.1", "fd00::100")) {
		t.Errorf("announced %v, want 10.0.0.1 and fd00::100", got)
	}
	// One real server quiesced: still announced.
	applyRules(t, st, "-e -t 10.0.0.1:80 -r 10.0.2.11:80 -g -w 0\n")
	if got := bgpVIPs(st.Services(), nil); !slices.Equal(got, want("10.0.0.1", "fd00::100")) {
		t.Errorf("one real server at weight 0: announced %v", got)
	}
	// Both: withdrawn (the :443 service has no real server at all).
	applyRules(t, st, "-e -t 10.0.0.1:80 -r 10.0.2.12:80 -g -w 0\n")
	if got := bgpVIPs(st.Services(), nil); !slices.Equal(got, want("fd00::100")) {
		t.Errorf("every real server at weight 0: announced %v, want fd00::100 only", got)
	}
	// A real server on the :443 service brings it back.
	applyRules(t, st, "-a -t 10.0.0.1:443 -r 10.0.2.11:443 -g -w 1\n")
	standby := map[[16]byte]bool{netip.MustParseAddr("fd00::100").As16(): true}
	if got := bgpVIPs(st.Services(), standby); !slices.Equal(got, want("10.0.0.1")) {
		t.Errorf("fd00::100 standby, 10.0.0.1:443 alive: announced %v, want 10.0.0.1", got)
	}
	standby[netip.MustParseAddr("10.0.0.1").As16()] = true
	if got := bgpVIPs(st.Services(), standby); len(got) != 0 {
		t.Errorf("all standby: announced %v", got)
	}
}

// TestMainBGPFlags: a wrong --bgp-* value stops uvsd before anything
// starts, with exit code 2 and a message naming the flag and the value.
func TestMainBGPFlags(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("-A -t 10.0.0.1:80 -s mh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--rules", rules, "--control", "", "--iface", "uvs-none0"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bgp-as", "0", "--bgp-router-id", "10.0.0.1", "--bgp-peer", "10.0.9.1,as=65000"}, `--bgp-as: AS "0"`},
		{[]string{"--bgp-as", "65001", "--bgp-peer", "10.0.9.1,as=65000"}, "--bgp-as needs --bgp-router-id"},
		{[]string{"--bgp-as", "65001", "--bgp-router-id", "fd00::1", "--bgp-peer", "10.0.9.1,as=65000"}, `--bgp-router-id "fd00::1"`},
		{[]string{"--bgp-as", "65001", "--bgp-router-id", "10.0.0.1"}, "at least one --bgp-peer"},
		{[]string{"--bgp-as", "65001", "--bgp-router-id", "10.0.0.1", "--bgp-peer", "10.0.9.1"}, "--bgp-peer: peer 10.0.9.1: as= is required"},
		{[]string{"--bgp-as", "65001", "--bgp-router-id", "10.0.0.1", "--bgp-peer", "10.0.9.1,as=65000,port=x"}, `port="x"`},
		{[]string{"--bgp-as", "65001", "--bgp-router-id", "10.0.0.1", "--bgp-peer", "10.0.9.1,as=65000", "--bgp-community", "70000:1"}, `--bgp-community: community "70000:1"`},
		{[]string{"--bgp-as", "65001", "--bgp-router-id", "10.0.0.1", "--bgp-peer", "10.0.9.1,as=65000", "--bgp-med", "-1"}, `--bgp-med "-1"`},
		{[]string{"--bgp-as", "65001", "--bgp-router-id", "10.0.0.1", "--bgp-peer", "10.0.9.1,as=65000", "--bgp-listen-port", "0"}, "--bgp-listen-port 0"},
		{[]string{"--bgp-as", "65001", "--bgp-router-id", "10.0.0.1", "--bgp-peer", "10.0.9.1,as=65000,passive"}, "passive needs a listen port"},
		{[]string{"--bgp-peer", "10.0.9.1,as=65000"}, "--bgp-peer needs --bgp-as"},
		{[]string{"--bgp-med", "5"}, "--bgp-med needs --bgp-as"},
		{[]string{"--hash-order", "random"}, `--hash-order "random"`},
		{[]string{"--drain-timeout", "0s"}, "--drain-timeout"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(append(slices.Clone(base), tc.args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("uvsd %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stderr.String(), tc.want)
		}
		if strings.Contains(stderr.String(), "serving") {
			t.Errorf("uvsd %s started serving", strings.Join(tc.args, " "))
		}
	}
}

// TestDrain: Drain returns once the last active connection ends, or at
// its timeout while one is still active.
func TestDrain(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("-A -t 10.0.0.1:80 -s mh\n-a -t 10.0.0.1:80 -r 10.0.2.11:80 -g -w 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{RulesFile: rules, ConnCapacity: 1024}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	dst := d.State.Services()[0].Dests[0]
	dst.BindConn(false)
	dst.SetActive(true)

	start := time.Now()
	d.Drain(context.Background(), 200*time.Millisecond)
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("Drain returned after %v with a connection active, before its timeout", el)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Drain(context.Background(), time.Minute)
	}()
	select {
	case <-done:
		t.Fatal("Drain returned with a connection active")
	case <-time.After(300 * time.Millisecond):
	}
	dst.UnbindConn(false, true)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return within 10s of the last connection's end")
	}
	if !d.bgp.draining {
		t.Error("Drain did not mark the director draining")
	}
}
