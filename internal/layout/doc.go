// Package layout holds the module's dependency rules as a test: the import
// arrows must read like the architecture. From the bottom up:
//
//   - wire formats: header (Ethernet/IP/TCP/UDP/ICMP views and checksums),
//     spec (services and destinations in ipvsadm's terms) and control/wire
//     (the control socket's protocol) import nothing of the module above
//     them;
//   - the compiled configuration, snapshot, sits between the control plane
//     that produces it and the data plane that consumes it, and links
//     neither;
//   - the control plane (control) links no data-plane package; uvsadm
//     (cmd/uvsadm, control/client) links only the wire formats and
//     ipvsadm's language;
//   - the data plane (dataplane/..., modes, conntrack) links no control
//     plane, daemon or lab;
//   - keepalived.conf's reader (keepalived) and the checkers (healthcheck)
//     link no data plane and no control-plane state: the daemon applies
//     what they decide;
//   - the daemon (cmd/uvsd, director) links no lab: the decision trace
//     (trace) is written by uvsd and only read by the lab;
//   - the lab (lab/..., cmd/uvs-lab) drives uvsd like a user and links no
//     data-plane package.
//
// The rules live in layout_test.go and run with every go test.
package layout
