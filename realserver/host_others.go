//go:build !linux

package realserver

import (
	"context"
	"errors"
)

// errUnsupported is returned by every host operation off Linux.
var errUnsupported = errors.New("uvs-rs: only supported on linux")

// KernelHasIPIP reports false off Linux.
func KernelHasIPIP() bool { return false }

func drUp(Env, *Options) error                   { return errUnsupported }
func drDown(Env, *Options) error                 { return errUnsupported }
func tunUp(context.Context, Env, *Options) error { return errUnsupported }
func tunDown(Env, *Options) error                { return errUnsupported }
func status(Env, *Options) error                 { return errUnsupported }
