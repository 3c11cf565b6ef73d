package lab

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckParams(t *testing.T) {
	sc := mustScenario(t, "nat")
	p := Params{}
	if err := checkParams(sc, &p); err != nil || p.Sched != "wrr" {
		t.Fatalf("defaults: %v, sched %q", err, p.Sched)
	}
	for _, tc := range []struct {
		p    Params
		want string
	}{
		{Params{Sched: "roundrobin"}, `unknown scheduler "roundrobin"`},
		{Params{Weights: map[string]int{"rs3": 1}}, `no real server "rs3"`},
		{Params{Weights: map[string]int{"rs1": 70000}}, "out of range"},
		{Params{Persist: -1}, "--persist"},
	} {
		if err := checkParams(sc, &tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.p, err, tc.want)
		}
	}
	for _, name := range []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"} {
		if err := checkParams(sc, &Params{Sched: name}); err != nil {
			t.Errorf("-s %s: %v", name, err)
		}
	}
}

func TestCLIUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no command"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"up"}, 2, "needs exactly one scenario"},
		{[]string{"run", "nat", "dr"}, 2, "needs exactly one scenario"},
		{[]string{"list", "extra"}, 2, "takes no argument"},
		{[]string{"down", "--sched", "rr"}, 2, "down does not take --sched"},
		{[]string{"run", "nat", "--requests", "x"}, 2, "invalid value"},
		{[]string{"break"}, 2, "dr-no-vip-on-lo"},
		{[]string{"httpd"}, 2, "--name is required"},
		{[]string{"list", "--prefix", "mine"}, 1, `prefix "mine"`},
		{[]string{"help"}, 0, "usage: uvs-lab"},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
			t.Errorf("uvs-lab %v: exit %d, output %q %q; want exit %d and %q", tc.args, code, out.String(), errb.String(), tc.code, tc.want)
		}
	}
	var out bytes.Buffer
	if code := Main(context.Background(), []string{"list"}, &out, &out); code != 0 {
		t.Fatalf("list: exit %d", code)
	}
	for _, sc := range Scenarios() {
		if !strings.Contains(out.String(), sc.Name) || !strings.Contains(out.String(), sc.Seed) {
			t.Errorf("list lacks %s or its seed", sc.Name)
		}
	}
	for _, ex := range Exercises() {
		if !strings.Contains(out.String(), ex.Name) {
			t.Errorf("list lacks exercise %s", ex.Name)
		}
	}
}

func TestRunBadScenarioAndScheduler(t *testing.T) {
	tl := newTestLab(t)
	var out, errb bytes.Buffer
	args := []string{"--prefix", tl.prefix, "--state-dir", tl.state, "--bin", tl.bin}
	if code := Main(context.Background(), append([]string{"run", "natt"}, args...), &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), `unknown scenario "natt"`) {
		t.Fatalf("run natt: exit %d %q", code, errb.String())
	}
	errb.Reset()
	if code := Main(context.Background(), append([]string{"up", "nat", "--sched", "bogus"}, args...), &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), `unknown scheduler "bogus"`) {
		t.Fatalf("up --sched bogus: exit %d %q", code, errb.String())
	}
	if nss := tl.namespaces(t); len(nss) != 0 {
		t.Fatalf("a rejected command built %v", nss)
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ ns, inst, role string }{
		{"uvs-lab-nat-client", "nat", "client"},
		{"uvs-lab-dr-multisubnet-rs1", "dr-multisubnet", "rs1"},
		{"uvs-lab-dr-no-vip-on-lo-director", "dr-no-vip-on-lo", "director"},
	} {
		in, role, ok := splitNS("uvs-lab", tc.ns)
		if !ok || in != tc.inst || role != tc.role || nsName("uvs-lab", in, role) != tc.ns {
			t.Errorf("splitNS(%q) = %q %q %v", tc.ns, in, role, ok)
		}
	}
	for _, bad := range []string{"uvs-lab", "uvs-lab-", "uvs-lab-nat", "uvs-lab-nat-", "other-nat-client"} {
		if _, _, ok := splitNS("uvs-lab", bad); ok {
			t.Errorf("splitNS(%q) accepted", bad)
		}
	}
	// Every scenario's roles are single words, so names parse back.
	for _, sc := range Scenarios() {
		for _, r := range sc.plan(Params{}, nil).roles {
			if strings.Contains(r, "-") {
				t.Errorf("%s: role %q has a '-'", sc.Name, r)
			}
		}
	}
	if displayWidth("seed 000 (多网段)") != len("seed 000 ()")+6 {
		t.Errorf("displayWidth of CJK")
	}
}

func TestARPReply(t *testing.T) {
	vip := netip.MustParseAddr("10.0.0.100")
	mac := net.HardwareAddr{2, 0, 0, 0, 4, 1}
	f := make([]byte, 0, 42)
	f = append(f, 2, 0, 0, 0, 1, 1)
	f = append(f, mac...)
	f = append(f, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2)
	f = append(f, mac...)
	f = append(f, 10, 0, 0, 100)
	f = append(f, 2, 0, 0, 0, 1, 1, 10, 0, 0, 200)
	got, ok := arpReplyFrom(f, vip)
	if !ok || got.String() != mac.String() {
		t.Fatalf("reply: %v %v", got, ok)
	}
	if _, ok := arpReplyFrom(f, netip.MustParseAddr("10.0.0.101")); ok {
		t.Fatal("reply for another address accepted")
	}
	req := append([]byte(nil), f...)
	req[21] = 1
	if _, ok := arpReplyFrom(req, vip); ok {
		t.Fatal("request taken for a reply")
	}
	if _, ok := arpReplyFrom(f[:30], vip); ok {
		t.Fatal("short frame accepted")
	}
}
