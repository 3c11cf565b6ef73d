package connsync

import (
	"net/netip"
	"testing"
)

func TestConfigWithDefaults(t *testing.T) {
	g6 := netip.MustParseAddr("ff02::81")
	tests := []struct {
		name string
		in   Config
		mtu  int
		want Config
	}{
		{"master defaults", Config{State: "master", Interface: "eth1"}, 9000,
			Config{State: "master", Interface: "eth1", MaxLen: 1472, Group: DefaultGroup, Port: 8848, TTL: 1}},
		{"backup defaults from a small MTU", Config{State: "backup", Interface: "eth1"}, 1400,
			Config{State: "backup", Interface: "eth1", MaxLen: 1472, Group: DefaultGroup, Port: 8848, TTL: 1}},
		{"backup defaults from a jumbo MTU", Config{State: "backup"}, 9000,
			Config{State: "backup", MaxLen: 9000 - 28, Group: DefaultGroup, Port: 8848, TTL: 1}},
		{"backup MTU clamped to 65535", Config{State: "backup"}, 70000,
			Config{State: "backup", MaxLen: 65535 - 28, Group: DefaultGroup, Port: 8848, TTL: 1}},
		{"IPv6 master", Config{State: "master", Group: g6}, 1500,
			Config{State: "master", MaxLen: 1452, Group: g6, Port: 8848, TTL: 1}},
		{"IPv6 backup", Config{State: "backup", Group: g6}, 9000,
			Config{State: "backup", MaxLen: 9000 - 48, Group: g6, Port: 8848, TTL: 1}},
		{"explicit master maxlen kept", Config{State: "master", MaxLen: 1, Port: 9000, TTL: 5}, 1500,
			Config{State: "master", MaxLen: 1, Group: DefaultGroup, Port: 9000, TTL: 5}},
		{"explicit backup maxlen raised to 1024", Config{State: "backup", MaxLen: 100}, 1500,
			Config{State: "backup", MaxLen: 1024, Group: DefaultGroup, Port: 8848, TTL: 1}},
		{"explicit maxlen capped", Config{State: "master", MaxLen: 65535}, 1500,
			Config{State: "master", MaxLen: 65507, Group: DefaultGroup, Port: 8848, TTL: 1}},
		{"explicit IPv6 maxlen capped", Config{State: "backup", MaxLen: 65535, Group: g6}, 1500,
			Config{State: "backup", MaxLen: 65487, Group: g6, Port: 8848, TTL: 1}},
	}
	for _, tt := range tests {
		got := tt.in.WithDefaults(tt.mtu)
		if got != tt.want {
			t.Errorf("%s: %+v.WithDefaults(%d) = %+v, want %+v", tt.name, tt.in, tt.mtu, got, tt.want)
		}
		if again := got.WithDefaults(tt.mtu); again != got {
			t.Errorf("%s: not idempotent: %+v then %+v", tt.name, got, again)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	ok := Config{State: "master", Interface: "eth1"}.WithDefaults(1500)
	if err := ok.check("master"); err != nil {
		t.Fatal(err)
	}
	bad := []Config{
		{State: "backup", Interface: "eth1", Group: DefaultGroup},
		{State: "master", Group: DefaultGroup},
		{State: "master", Interface: "eth1", Group: netip.MustParseAddr("10.0.0.1")},
	}
	for _, c := range bad {
		if err := c.check("master"); err == nil {
			t.Errorf("%+v accepted as a master", c)
		}
	}
}
