package ownership_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/uvs-lb/uvs/dataplane/afpacket"
	"github.com/uvs-lb/uvs/ownership"
)

// The differential tests run the same frames through the reference
// classifier and the three compiled forms of the same Set: the classic BPF
// filter in golang.org/x/net/bpf's VM (here), the XDP program with
// BPF_PROG_TEST_RUN and the nftables rules in a network namespace
// (diff_linux_test.go).

// randomFrames is how many generated frames follow the table.
const randomFrames = 1500

// seed returns the generator's seed: UVS_OWN_SEED, or a fixed one.
func seed(t testing.TB) uint64 {
	if s := os.Getenv("UVS_OWN_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("UVS_OWN_SEED: %v", err)
		}
		return v
	}
	return 0x75767331
}

// diffFrame is a frame of the differential tests.
type diffFrame struct {
	name  string
	frame []byte
}

// diffFrames returns the table's frames, then randomFrames generated from
// the fixture set.
func diffFrames(t testing.TB) []diffFrame {
	var out []diffFrame
	for _, c := range cases() {
		out = append(out, diffFrame{c.name, c.frame})
	}
	s := seed(t)
	g := newFrameGen(s, fixture(t))
	for i := range randomFrames {
		out = append(out, diffFrame{fmt.Sprintf("random frame %d of seed %#x", i, s), g.frame()})
	}
	return out
}

// cbpf is the exact filter of a Set in golang.org/x/net/bpf's VM. The VM
// implements no ancillary load but the length: a frame given to it carries
// its VLAN tag in its bytes, so the program's load of
// SKF_AD_VLAN_TAG_PRESENT (the tag in skb metadata) becomes the constant 0.
type cbpf struct{ vm *bpf.VM }

func newCBPF(t testing.TB, s *ownership.Set) *cbpf {
	t.Helper()
	raw, err := afpacket.Filter(s)
	if err != nil {
		t.Fatal(err)
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the filter does not disassemble")
	}
	var vlan int
	for i, in := range insns {
		if e, ok := in.(bpf.LoadExtension); ok && e.Num == bpf.ExtVLANTagPresent {
			insns[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: 0}
			vlan++
		}
	}
	if vlan != 1 {
		t.Fatalf("%d loads of SKF_AD_VLAN_TAG_PRESENT, want 1", vlan)
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("classic BPF filter: %d instructions", len(raw))
	return &cbpf{vm}
}

// accepts reports whether the filter accepts frame (whole: a shorter snap
// length would truncate it).
func (c *cbpf) accepts(t testing.TB, frame []byte) bool {
	n, err := c.vm.Run(frame)
	if err != nil {
		t.Fatalf("VM: %v", err)
	}
	if n > 0 && n < len(frame) {
		t.Fatalf("the filter accepts %d bytes of a %d-byte frame", n, len(frame))
	}
	return n > 0
}

// verdicts is what each backend did with one frame.
type verdicts struct {
	model   ownership.Verdict
	nftView ownership.Verdict // the model as nftables walks IPv6 (no limit)
	cbpf    bool              // accepted
	xdp     string            // "redirect", "pass" or "" (not run)
	nft     string            // "drop", "pass" or "" (not run)
}

// agree reports whether every backend that ran did what the model says.
func (v *verdicts) agree() bool {
	owned := v.model != ownership.Kernel
	if v.cbpf != owned {
		return false
	}
	if v.xdp != "" && (v.xdp == "redirect") != owned {
		return false
	}
	if v.nft != "" && (v.nft == "drop") != (v.nftView == ownership.Director) {
		return false
	}
	return true
}

func (v *verdicts) String() string {
	cb := "reject"
	if v.cbpf {
		cb = "accept"
	}
	s := fmt.Sprintf("model %v, cBPF %s", v.model, cb)
	if v.xdp != "" {
		s += ", XDP " + v.xdp
	}
	if v.nft != "" {
		s += ", nftables " + v.nft
		if v.nftView != v.model {
			s += fmt.Sprintf(" (nftables walks every IPv6 extension header: %v expected)", v.nftView)
		}
	}
	return s
}

// TestFilterAgrees is the part of the differential test that needs no
// privilege: the reference classifier and the classic BPF filter on the
// table and the generated frames.
func TestFilterAgrees(t *testing.T) {
	s := fixture(t)
	c := newCBPF(t, s)
	count := map[ownership.Verdict]int{}
	for _, f := range diffFrames(t) {
		v := verdicts{model: s.Classify(f.frame), nftView: s.ClassifyUnlimited(f.frame), cbpf: c.accepts(t, f.frame)}
		count[v.model]++
		if !v.agree() {
			t.Errorf("%s: %v\n%s", f.name, &v, describe(f.frame))
		}
	}
	t.Logf("verdicts: %v", count)
	if count[ownership.Director] < 100 || count[ownership.Shared] < 10 || count[ownership.Kernel] < 100 {
		t.Errorf("verdicts %v: the frames do not exercise every verdict", count)
	}
}
