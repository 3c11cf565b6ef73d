package dataplane_test

import (
	"encoding/binary"
	"testing"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/header"
)

// partialTCP returns a client SYN whose TCP checksum field holds only the
// pseudo-header sum, as the client's stack leaves it for offload (and as
// AF_XDP delivers it, without saying so).
func partialTCP(t *testing.T) []byte {
	f := tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40000, 80, true, false)
	var p header.Parsed
	p.Parse(f)
	binary.BigEndian.PutUint16(f[p.L4Off+header.TCPChecksumOff:],
		header.PseudoHeaderChecksum(p.Proto, p.SrcIP(), p.DstIP(), uint32(p.End-p.L4Off)))
	if header.L4ChecksumValid(f, &p) {
		t.Fatal("the partial frame verifies")
	}
	return f
}

// sendOne runs one frame through the worker with the given flags and
// returns the sent frame's TCP checksum validity.
func sendOne(t *testing.T, r *rig, frame []byte, unknown bool) bool {
	t.Helper()
	r.io.Inject(frame, 1, false)
	buf := make([]dataplane.Frame, 1)
	if n, err := r.io.ReadBatch(buf); n != 1 || err != nil {
		t.Fatalf("fake read %d, %v", n, err)
	}
	buf[0].CsumUnknown = unknown
	r.w.ProcessBatch(buf)
	out := r.io.Sent()
	if len(out) != 1 {
		t.Fatalf("sent %d frames", len(out))
	}
	var p header.Parsed
	p.Parse(out[0].Data())
	return header.L4ChecksumValid(out[0].Data(), &p)
}

// TestCsumUnknown: a backend that cannot tell partial checksums (AF_XDP)
// sets CsumUnknown; the worker recognises the partial checksum and the NAT
// rewrite completes it. Without the flag, the same frame is taken as
// complete and leaves with a wrong checksum.
func TestCsumUnknown(t *testing.T) {
	r := newRig(t, natRules)
	if !sendOne(t, r, partialTCP(t), true) {
		t.Fatal("CsumUnknown: the forwarded frame's TCP checksum does not verify")
	}
	r = newRig(t, natRules)
	if sendOne(t, r, partialTCP(t), false) {
		t.Fatal("without CsumUnknown the partial checksum was completed: the test proves nothing")
	}
	// A complete checksum stays complete (and correct) with the flag.
	r = newRig(t, natRules)
	if !sendOne(t, r, tcpFrame(t, macCli, macDir0, "10.0.1.2", "10.0.1.100", 40001, 80, true, false), true) {
		t.Fatal("CsumUnknown broke a complete checksum")
	}
}

// nopIO discards what the worker sends.
type nopIO struct{}

func (nopIO) ReadBatch([]dataplane.Frame) (int, error)    { return 0, dataplane.ErrClosed }
func (nopIO) WriteBatch(f []dataplane.Frame) (int, error) { return len(f), nil }
func (nopIO) Close() error                                { return nil }

func TestCsumUnknownAllocs(t *testing.T) {
	r := newRig(t, natRules)
	w := dataplane.NewWorker(nopIO{}, r.env)
	frame := partialTCP(t)
	batch := make([]dataplane.Frame, 1)
	buf := make([]byte, 64+len(frame))
	if n := testing.AllocsPerRun(100, func() {
		copy(buf[64:], frame)
		batch[0] = dataplane.Frame{Buf: buf, Off: 64, Len: len(frame), Ifindex: 1, CsumUnknown: true}
		w.ProcessBatch(batch)
	}); n != 0 {
		t.Fatalf("%v allocs per frame", n)
	}
	if w.Counters.Load(dataplane.CntTx) != 101 {
		t.Fatalf("sent %d frames", w.Counters.Load(dataplane.CntTx))
	}
}
