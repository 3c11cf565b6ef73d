//go:build !linux

package director

// threadRx does nothing: threaded NAPI is Linux's.
func (d *Director) threadRx() func() { return func() {} }

// CleanupNAPI does nothing: threaded NAPI is Linux's.
func CleanupNAPI() error { return nil }
