package explain

import (
	"bytes"
	"io"
	"net/netip"
	"os"
	"testing"
)

// FuzzFlow feeds arbitrary bytes as every hop's capture file: Flow may
// return an error but must not panic.
func FuzzFlow(f *testing.F) {
	dir := f.TempDir()
	seed := func(ps ...pkt) {
		b, err := os.ReadFile(writePcap(f, dir, "seed.pcap", frames(f, ps...)...))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-7])
	}
	seed(syn(macC, macD0, client, vip, 64), synack(macD0, macC, vip, client, 63),
		req(macC, macD0, client, vip, 64), resp(macD0, macC, vip, client, 63))
	seed(syn(macC, macD0, client, vip, 64), syn(macD1, macR1, client, vip, 63).tunnel("gue"))
	seed(syn(macC, macD0, client, vip, 64), syn(macD1, macR1, client, vip, 63).tunnel("ipip"))
	seed(syn(macC, macD0, cli6, vip6, 64))
	f.Add([]byte{})
	f.Add([]byte{0xd4, 0xc3, 0xb2, 0xa1})

	f.Fuzz(func(t *testing.T, data []byte) {
		open := func(string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		hops := []Hop{{"client", "a"}, {"director", "b"}}
		for _, v := range []netip.AddrPort{vip, vip6, netip.AddrPortFrom(vip.Addr(), 0)} {
			_ = flow(io.Discard, hops, netip.Addr{}, v, open)
		}
	})
}
