package explain

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"testing"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

// maxFuzzPcap bounds FuzzFlow's input: the fuzzer minimises every new
// interesting input with up to quadratically many executions in its
// length, so long inputs stall the campaign without covering more.
const maxFuzzPcap = 4096

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
		// The same with a small snap length: the pcap reader sizes its
		// buffer by it, and clearing 256 KiB for every scan was most of
		// an execution's time.
		small := append([]byte(nil), b...)
		binary.LittleEndian.PutUint32(small[16:20], 2048)
		f.Add(small)
	}
	seed(syn(macC, macD0, client, vip, 64), synack(macD0, macC, vip, client, 63),
		req(macC, macD0, client, vip, 64), resp(macD0, macC, vip, client, 63))
	seed(syn(macC, macD0, client, vip, 64), syn(macD1, macR1, client, vip, 63).tunnel("gue"))
	seed(syn(macC, macD0, client, vip, 64), syn(macD1, macR1, client, vip, 63).tunnel("ipip"))
	seed(syn(macC, macD0, cli6, vip6, 64))
	f.Add([]byte{})
	f.Add([]byte{0xd4, 0xc3, 0xb2, 0xa1})

	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %q", len(data), data) })()
		if len(data) > maxFuzzPcap || len(data) == 0 {
			return
		}
		open := func(string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		hops := []Hop{{"client", "a"}, {"director", "b"}}
		// One service address per input (the last byte picks it; the
		// capture's first bytes are its magic): each flow scans every
		// hop's capture up to twice.
		v := []netip.AddrPort{vip, vip6, netip.AddrPortFrom(vip.Addr(), 0)}[data[len(data)-1]%3]
		_ = flow(io.Discard, hops, netip.Addr{}, v, open)
	})
}
