package realserver

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestRunUsageErrors(t *testing.T) {
	cases := [][]string{
		nil,
		{"frobnicate"},
		{"dr"},
		{"dr", "sideways"},
		{"dr", "up"},
		{"dr", "up", "--vip", "not-an-ip"},
		{"dr", "up", "--vip", "0.0.0.0"},
		{"dr", "up", "--vip", "224.0.0.1"},
		{"dr", "up", "--vip", "127.0.0.2"},
		{"dr", "up", "--vip", "192.0.2.1", "extra"},
		{"dr", "up", "--vip", "192.0.2.1", "--gue-port", "1"},
		{"tun", "up", "--vip", "192.0.2.1", "--gue-port", "70000"},
		{"tun", "up", "--vip", "192.0.2.1", "--dev", "a-name-longer-than-15"},
		{"tun", "up", "--vip", "192.0.2.1", "--dev", "all"},
		{"status", "--vip"},
	}
	for _, args := range cases {
		var out bytes.Buffer
		err := Run(context.Background(), Env{Stdout: &out, Stderr: &out}, args)
		if !errors.Is(err, ErrUsage) {
			t.Errorf("Run(%q) = %v, want a usage error", args, err)
		}
		if out.Len() != 0 {
			t.Errorf("Run(%q) wrote %q before failing", args, out.String())
		}
	}
}

func TestParseOptions(t *testing.T) {
	var o Options
	err := parse("tun up", []string{"--vip", "192.0.2.1,2001:db8::1", "--vip", "::ffff:192.0.2.2",
		"--gue-port", "6080", "--dev", "rs0", "--foreground", "--state-dir", "/tmp/x"}, &o, true, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.2")}
	if len(o.VIPs) != 3 || o.VIPs[0] != want[0] || o.VIPs[1] != want[1] || o.VIPs[2] != want[2] {
		t.Fatalf("VIPs %v, want %v", o.VIPs, want)
	}
	if o.GUEPort != 6080 || o.Dev != "rs0" || !o.Foreground || o.StateBase != "/tmp/x" || o.ReadyFD != -1 {
		t.Fatalf("options %+v", o)
	}
	o = Options{}
	if err := parse("dr up", []string{"--vip", "192.0.2.1"}, &o, false, true); err != nil || o.Dev != "lo" || o.StateBase != DefaultStateBase {
		t.Fatalf("dr defaults: %+v %v", o, err)
	}
	o = Options{}
	if err := parse("dr down", nil, &o, false, false); err != nil || len(o.VIPs) != 0 {
		t.Fatalf("dr down without --vip: %+v %v", o, err)
	}
}

func TestRunHelp(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), Env{Stdout: &out}, []string{"help"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"uvs-rs dr up", "uvs-rs tun up", "uvs-rs tun down", "uvs-rs status", "--gue-port"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
