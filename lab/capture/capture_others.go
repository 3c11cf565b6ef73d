//go:build !linux

package capture

// Start returns ErrUnsupported: packet capture needs Linux AF_PACKET.
func Start(netnsName, iface, path string) (*Capture, error) {
	return nil, ErrUnsupported
}
