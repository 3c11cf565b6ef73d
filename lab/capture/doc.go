// Package capture records every frame of one interface, in both directions,
// into a pcap file, so the lab can show what each hop of a load-balanced
// connection looked like (see package explain). It is a small pure-Go
// tcpdump -w: an AF_PACKET socket opened inside a named network namespace,
// read by one goroutine into a preallocated buffer and written with
// gopacket's pcapgo (Ethernet link type, nanosecond timestamps, snap length
// 262144).
//
//	c, err := capture.Start("uvs-lab-dir", "d0", "/tmp/lab/d0.pcap")
//	...
//	err = c.Stop() // flushes and closes the file
//
// Frames are written as the kernel hands them to packet sockets: outgoing
// frames on interfaces with checksum offload (veth) carry partial
// checksums and segmentation-offload frames may be larger than the MTU;
// both are normal for captures and kept unchanged. A VLAN tag stripped by
// offload is put back into the frame.
//
// Frames a program sends through a packet socket with PACKET_QDISC_BYPASS
// (as the uvsd data plane does) skip the kernel's capture taps on the
// sending interface: capture them at the receiving end of the link.
package capture
