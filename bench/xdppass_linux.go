package bench

import (
	"fmt"
	"io"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// attachXDPPass attaches to ifname in namespace ns, in native (driver)
// mode, an XDP program that passes every frame (XDP_PASS), and returns the
// attachment: closing it detaches the program, and so does the process's
// exit (a bpf_link). The kernel-forward-xdp variant measures with it what
// a native XDP program on a veth costs the kernel's own forwarding, whatever
// the program does: veth_xdp_set turns the peer's TSO and GSO offloads off,
// so the sender's stack segments before the veth, and each frame is
// received through veth's NAPI into an XDP buffer.
func attachXDPPass(ns, ifname string) (io.Closer, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "bench_xdp_pass", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		return nil, fmt.Errorf("loading the XDP_PASS program: %w", err)
	}
	defer prog.Close() // the link holds its own reference
	var l link.Link
	err = inNetNS(ns, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attaching XDP_PASS to %s in %s (native mode): %w", ifname, ns, err)
	}
	return l, nil
}
