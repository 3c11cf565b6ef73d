//go:build !linux

package lab

import "os"

// isTerminal reports false: progress is shown as plain lines.
func isTerminal(*os.File) bool { return false }
