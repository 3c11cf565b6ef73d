//go:build !linux

package bench

import (
	"context"
	"errors"
)

var errLinuxOnly = errors.New("uvs-bench needs Linux (network namespaces, AF_PACKET)")

// Benchmark needs Linux.
func Benchmark(ctx context.Context, cfg Config) (*Report, error) { return nil, errLinuxOnly }

// Generate needs Linux.
func Generate(ctx context.Context, cfg GenConfig) (GenResult, error) {
	return GenResult{}, errLinuxOnly
}

func ifaceMAC(ns, iface string) ([6]byte, error) { return [6]byte{}, errLinuxOnly }
