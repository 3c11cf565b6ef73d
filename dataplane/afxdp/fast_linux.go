package afxdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/uvs-lb/uvs/dataplane"
	"github.com/uvs-lb/uvs/dataplane/nic"
)

// DefaultMaxFlows is the fast path's default capacity in flows (one per
// direction of a connection).
const DefaultMaxFlows = 65536

// FastMap is the XDP program's fast-path flow table: a per-CPU hash map
// that every program instance of the Program shares, so that a flow
// received on one interface may leave by another. It implements
// dataplane.FastMap.
type FastMap struct {
	m    *ebpf.Map
	ncpu int
	// ndoXmit holds the interfaces that take frames redirected by XDP
	// (RefreshDevices), indexed by ifindex: CanSend is on the packet path.
	ndoXmit atomic.Pointer[[]bool]
	// ReadAll's buffers.
	batchKeys []fastKey
	batchVals []fastValue
}

var _ dataplane.FastMap = (*FastMap)(nil)

func newFastMap(maxFlows int) (*FastMap, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("afxdp: possible CPUs: %w", err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: mapFast, Type: ebpf.PerCPUHash,
		KeySize: uint32(binary.Size(fastKey{})), ValueSize: fvSize, MaxEntries: uint32(maxFlows)})
	if err != nil {
		return nil, fmt.Errorf("afxdp: creating map %s: %w", mapFast, err)
	}
	f := &FastMap{m: m, ncpu: ncpu}
	f.ndoXmit.Store(&[]bool{})
	return f, nil
}

func fastKeyOf(k dataplane.FastKey) fastKey {
	fk := fastKey{Src: k.Src, Dst: k.Dst, Proto: k.Proto}
	binary.BigEndian.PutUint16(fk.SrcPort[:], k.SrcPort)
	binary.BigEndian.PutUint16(fk.DstPort[:], k.DstPort)
	return fk
}

// valueOf returns the map value of flow f, counters zero.
func valueOf(f *dataplane.FastFlow) fastValue {
	k := fastKeyOf(f.Key)
	v := fastValue{DstMAC: f.DstMAC, SrcMAC: f.SrcMAC, Ifindex: uint32(f.Ifindex)}
	v.MTU = 0xffff
	if f.MTU > 0 && f.MTU < 0xffff {
		v.MTU = uint16(f.MTU)
	}
	var ip, l4 uint32
	if f.SetDst {
		v.Mode |= fastSetDst
		v.DstAddr = f.Dst
		binary.BigEndian.PutUint16(v.DstPort[:], f.DstPort)
		a := csumAdj(k.Dst[:], v.DstAddr[:])
		ip, l4 = csumAdd(ip, a), csumAdd(l4, csumAdd(a, csumAdj(k.DstPort[:], v.DstPort[:])))
	}
	if f.SetSrc {
		v.Mode |= fastSetSrc
		v.SrcAddr = f.Src
		binary.BigEndian.PutUint16(v.SrcPort[:], f.SrcPort)
		a := csumAdj(k.Src[:], v.SrcAddr[:])
		ip, l4 = csumAdd(ip, a), csumAdd(l4, csumAdd(a, csumAdj(k.SrcPort[:], v.SrcPort[:])))
	}
	if f.Encap {
		v.Mode = fastEncap
		v.SrcAddr, v.DstAddr = f.TunSrc, f.NextHop
		v.MTU = 0xffff - ipv4Min
		if f.MTU > 0 && f.MTU-ipv4Min < int(v.MTU) {
			v.MTU = uint16(max(f.MTU-ipv4Min, 0))
		}
	}
	v.IPAdj = uint16(csumAdd(ip, ttlAdj()))
	v.L4Adj = uint16(l4)
	return v
}

// Mono returns the CLOCK_MONOTONIC reading, bpf_ktime_get_ns' clock.
func (f *FastMap) Mono() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// Put installs flow fl on every CPU, counters zeroed.
func (f *FastMap) Put(fl *dataplane.FastFlow) error {
	v := valueOf(fl)
	v.Installed = uint64(f.Mono())
	vals := make([]fastValue, f.ncpu)
	for i := range vals {
		vals[i] = v
	}
	if err := f.m.Put(fastKeyOf(fl.Key), vals); err != nil {
		if errors.Is(err, unix.E2BIG) {
			return fmt.Errorf("afxdp: map %s is full (%d flows): %w", mapFast, f.m.MaxEntries(), err)
		}
		return fmt.Errorf("afxdp: updating map %s: %w", mapFast, err)
	}
	return nil
}

func (f *FastMap) read(k fastKey) (dataplane.FastCounts, bool, error) {
	var vals []fastValue
	if err := f.m.Lookup(k, &vals); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return dataplane.FastCounts{}, false, nil
		}
		return dataplane.FastCounts{}, false, fmt.Errorf("afxdp: reading map %s: %w", mapFast, err)
	}
	return sumCounts(vals), true, nil
}

// fastBatch is how many flows ReadAll reads per system call.
const fastBatch = 256

// ReadAll calls fn with every flow's counts, summed over the CPUs, read
// fastBatch flows per system call (BPF_MAP_LOOKUP_BATCH). Not for
// concurrent use.
func (f *FastMap) ReadAll(fn func(dataplane.FastKey, dataplane.FastCounts)) error {
	if f.batchKeys == nil {
		f.batchKeys = make([]fastKey, fastBatch)
		f.batchVals = make([]fastValue, fastBatch*f.ncpu)
	}
	var cur ebpf.MapBatchCursor
	for {
		n, err := f.m.BatchLookup(&cur, f.batchKeys, f.batchVals, nil)
		for i := range n {
			fn(keyFrom(f.batchKeys[i]), sumCounts(f.batchVals[i*f.ncpu:(i+1)*f.ncpu]))
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("afxdp: reading map %s: %w", mapFast, err)
		}
	}
}

// keyFrom is fastKeyOf's inverse.
func keyFrom(k fastKey) dataplane.FastKey {
	return dataplane.FastKey{Src: k.Src, Dst: k.Dst, SrcPort: binary.BigEndian.Uint16(k.SrcPort[:]),
		DstPort: binary.BigEndian.Uint16(k.DstPort[:]), Proto: k.Proto}
}

// sumCounts sums a flow's per-CPU values.
func sumCounts(vals []fastValue) dataplane.FastCounts {
	var c dataplane.FastCounts
	for i := range vals {
		c.Packets += vals[i].Packets
		c.Bytes += vals[i].Bytes
		c.Last = max(c.Last, int64(vals[i].Last))
	}
	if len(vals) > 0 {
		c.Installed = int64(vals[0].Installed)
	}
	return c
}

// Delete removes the flow with key k and returns its last counts.
func (f *FastMap) Delete(k dataplane.FastKey) (dataplane.FastCounts, bool, error) {
	fk := fastKeyOf(k)
	c, ok, err := f.read(fk)
	if err != nil || !ok {
		return c, ok, err
	}
	if err := f.m.Delete(fk); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return c, true, fmt.Errorf("afxdp: deleting from map %s: %w", mapFast, err)
	}
	return c, true, nil
}

// CanSend reports whether ifindex takes frames redirected by XDP, as the
// last RefreshDevices found.
func (f *FastMap) CanSend(ifindex int) bool {
	m := *f.ndoXmit.Load()
	return ifindex >= 0 && ifindex < len(m) && m[ifindex]
}

// RefreshDevices asks the kernel which of the interfaces ifindexes take
// frames redirected by XDP (NETDEV_XDP_ACT_NDO_XMIT among their
// xdp-features). A veth has it only while its peer can receive them: an
// XDP program attached to the peer, or GRO on (veth_xdp_set_features), so
// it is asked again about once a second.
func (f *FastMap) RefreshDevices(ifindexes []int) error {
	var m []bool
	var errs []error
	for _, i := range ifindexes {
		ok, err := nic.XDPNDOXmit(i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok && i >= 0 {
			if i >= len(m) {
				m = append(m, make([]bool, i+1-len(m))...)
			}
			m[i] = true
		}
	}
	f.ndoXmit.Store(&m)
	return errors.Join(errs...)
}

// Close releases the map.
func (f *FastMap) close() error { return f.m.Close() }
