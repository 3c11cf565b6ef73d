//go:build !linux

package fwmark

// ReadNft returns ErrNftUnsupported: nftables exists on Linux only.
func ReadNft(any) (*NftRules, error) { return nil, ErrNftUnsupported }
