// Package e2e holds uvs's end-to-end suites: real kernel TCP/UDP stacks in
// network namespaces the tests create, with uvsd, uvsadm and uvs-rs built
// from this tree and run as a user would run them. They need root and run
// in CI; without root they skip with the reason.
package e2e
