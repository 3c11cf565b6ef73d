package nic

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Netdev features by name through the ethtool ioctl (what `ethtool -k` and
// `ethtool -K` use): ETHTOOL_GSSET_INFO and ETHTOOL_GSTRINGS give the
// names of the ETH_SS_FEATURES bits, ETHTOOL_GFEATURES and
// ETHTOOL_SFEATURES read and request them (net/ethtool/ioctl.c).

const (
	ethSSFeatures  = 4 // ETH_SS_FEATURES
	ethGStringLen  = 32
	featureBlock   = 16 // struct ethtool_get_features_block: available, requested, active, never_changed
	setFeatureSize = 8  // struct ethtool_set_features_block: valid, requested
)

// ethtoolIoctl runs SIOCETHTOOL on ifname with data as the ethtool command
// buffer.
func ethtoolIoctl(fd int, ifname string, data []byte) error {
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data uintptr
		_    [16]byte
	}
	copy(ifr.name[:], ifname)
	ifr.data = uintptr(unsafe.Pointer(&data[0]))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(data)
	if errno != 0 {
		return errno
	}
	return nil
}

// featureBit returns the index of the named feature in ifname's feature
// set and the number of 32-bit words of the set (ETHTOOL_SFEATURES wants
// exactly ETHTOOL_DEV_FEATURE_WORDS).
func featureBit(fd int, ifname, name string) (bit, words int, err error) {
	info := make([]byte, 16+4)
	binary.NativeEndian.PutUint32(info[0:], unix.ETHTOOL_GSSET_INFO)
	binary.NativeEndian.PutUint64(info[8:], 1<<ethSSFeatures)
	if err := ethtoolIoctl(fd, ifname, info); err != nil {
		return 0, 0, fmt.Errorf("ETHTOOL_GSSET_INFO: %w", err)
	}
	if binary.NativeEndian.Uint64(info[8:]) == 0 {
		return 0, 0, fmt.Errorf("%s reports no feature names", ifname)
	}
	n := int(binary.NativeEndian.Uint32(info[16:]))
	if n <= 0 || n > 4096 {
		return 0, 0, fmt.Errorf("%s reports %d feature names", ifname, n)
	}
	strs := make([]byte, 12+n*ethGStringLen)
	binary.NativeEndian.PutUint32(strs[0:], unix.ETHTOOL_GSTRINGS)
	binary.NativeEndian.PutUint32(strs[4:], ethSSFeatures)
	binary.NativeEndian.PutUint32(strs[8:], uint32(n))
	if err := ethtoolIoctl(fd, ifname, strs); err != nil {
		return 0, 0, fmt.Errorf("ETHTOOL_GSTRINGS: %w", err)
	}
	for i := range n {
		s := strs[12+i*ethGStringLen : 12+(i+1)*ethGStringLen]
		l := 0
		for l < len(s) && s[l] != 0 {
			l++
		}
		if string(s[:l]) == name {
			return i, (n + 31) / 32, nil
		}
	}
	return 0, 0, fmt.Errorf("%s has no feature %q", ifname, name)
}

// setFeature requests feature name on or off on ifname and reports whether
// it was changed (false: it already was so). A feature the device cannot
// change is an error.
func setFeature(ifname, name string, on bool) (bool, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("feature %s: %w", name, err)
	}
	defer unix.Close(fd)
	bit, blocks, err := featureBit(fd, ifname, name)
	if err != nil {
		return false, fmt.Errorf("feature %s: %w", name, err)
	}
	get := make([]byte, 8+blocks*featureBlock)
	binary.NativeEndian.PutUint32(get[0:], unix.ETHTOOL_GFEATURES)
	binary.NativeEndian.PutUint32(get[4:], uint32(blocks))
	if err := ethtoolIoctl(fd, ifname, get); err != nil {
		return false, fmt.Errorf("feature %s: ETHTOOL_GFEATURES: %w", name, err)
	}
	blk := get[8+(bit/32)*featureBlock:]
	mask := uint32(1) << (bit % 32)
	available := binary.NativeEndian.Uint32(blk[0:])
	active := binary.NativeEndian.Uint32(blk[8:])
	if (active&mask != 0) == on {
		return false, nil
	}
	if available&mask == 0 {
		return false, fmt.Errorf("feature %s cannot be changed on %s", name, ifname)
	}
	set := make([]byte, 8+blocks*setFeatureSize)
	binary.NativeEndian.PutUint32(set[0:], unix.ETHTOOL_SFEATURES)
	binary.NativeEndian.PutUint32(set[4:], uint32(blocks))
	sb := set[8+(bit/32)*setFeatureSize:]
	binary.NativeEndian.PutUint32(sb[0:], mask)
	if on {
		binary.NativeEndian.PutUint32(sb[4:], mask)
	}
	// A positive return (ETHTOOL_F_WISH and friends) is not an errno:
	// the result is checked by reading the features again.
	if err := ethtoolIoctl(fd, ifname, set); err != nil {
		return false, fmt.Errorf("feature %s: ETHTOOL_SFEATURES: %w", name, err)
	}
	if err := ethtoolIoctl(fd, ifname, get); err != nil {
		return false, fmt.Errorf("feature %s: ETHTOOL_GFEATURES: %w", name, err)
	}
	if (binary.NativeEndian.Uint32(blk[8:])&mask != 0) != on {
		return false, fmt.Errorf("feature %s of %s stayed %v", name, ifname, !on)
	}
	return true, nil
}
