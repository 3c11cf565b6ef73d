package ownership_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/uvs-lb/uvs/dataplane/afpacket"
	"github.com/uvs-lb/uvs/header"
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
// implements no ancillary load but the length, so the frame is given to it
// as the kernel gives it to a packet socket's filter: an outer 802.1Q or
// 802.1ad tag moved to skb metadata (skb_vlan_untag in
// __netif_receive_skb_core, net/core/dev.c), and the program's loads of
// SKF_AD_VLAN_TAG_PRESENT and SKF_AD_VLAN_TPID replaced by the constants
// that metadata gives (one VM per tag protocol).
type cbpf struct {
	insns []bpf.Instruction
	vms   map[uint32]*bpf.VM // by tag protocol, 0: untagged
}

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
	var present int
	for _, in := range insns {
		if e, ok := in.(bpf.LoadExtension); ok && e.Num == bpf.ExtVLANTagPresent {
			present++
		}
	}
	if present != 1 {
		t.Fatalf("%d loads of SKF_AD_VLAN_TAG_PRESENT, want 1", present)
	}
	t.Logf("classic BPF filter: %d instructions", len(raw))
	c := &cbpf{insns: insns, vms: map[uint32]*bpf.VM{}}
	for _, tpid := range []uint32{0, header.EtherTypeVLAN, header.EtherTypeQinQ} {
		c.vm(t, tpid)
	}
	return c
}

// vm returns the VM for frames whose tag (in metadata) has protocol tpid,
// 0 for untagged frames.
func (c *cbpf) vm(t testing.TB, tpid uint32) *bpf.VM {
	if vm := c.vms[tpid]; vm != nil {
		return vm
	}
	insns := slices.Clone(c.insns)
	for i, in := range insns {
		e, ok := in.(bpf.LoadExtension)
		if !ok {
			continue
		}
		switch e.Num {
		case bpf.ExtVLANTagPresent:
			insns[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: uint32(btoi(tpid != 0))}
		case bpf.ExtVLANProto:
			insns[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: tpid}
		case bpf.ExtVLANTag:
			insns[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: 42}
		}
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	c.vms[tpid] = vm
	return vm
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// accepts reports whether the filter accepts frame (whole: a shorter snap
// length would truncate it).
func (c *cbpf) accepts(t testing.TB, frame []byte) bool {
	var tpid uint32
	if len(frame) >= header.EthernetVLANSize {
		switch et := uint32(binary.BigEndian.Uint16(frame[header.EthernetTypeOff:])); et {
		case header.EtherTypeVLAN, header.EtherTypeQinQ:
			tpid = et
			frame = slices.Concat(frame[:header.EthernetTypeOff], frame[header.EthernetVLANSize-2:])
		}
	}
	n, err := c.vm(t, tpid).Run(frame)
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
