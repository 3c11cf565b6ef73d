// Package bench is uvs's comparative benchmark (`make bench`, uvs-bench): it
// builds one network-namespace topology (a client, a director, two real
// servers) and measures, alternating the candidates round by round so that
// machine drift hits all of them alike, plain kernel forwarding, nftables
// DNAT, iptables statistic DNAT, HAProxy and uvsd in each forwarding mode.
//
// Figures (each the median of several runs, with min and max):
//
//   - UDP, 64-byte payload, 4096 flows: packets per second delivered to the
//     real servers at saturation, next to the generator's own ceiling;
//   - director CPU time per forwarded packet at a fixed offered rate;
//   - TCP connections per second (wrk, one request per connection) with
//     p50/p99 request latency, loaded and unloaded;
//   - single-stream TCP throughput (iperf3) with offloads left on;
//   - uvsd's connection table at 1 k and 1 M live connections: throughput and
//     bytes per connection.
//
// The generator (Generate) is an AF_PACKET SOCK_RAW socket sending
// precomputed-template frames with sendmmsg in batches, bypassing the qdisc,
// tolerating ENOBUFS and optionally paced. The real servers count and drop
// the UDP load in an nftables netdev ingress chain, so the sink costs almost
// nothing and never answers.
//
// The pure parts (statistics, /proc parsing, frame building, pacing, report
// rendering) are portable and unit-tested; the harness itself is Linux-only
// and needs root.
package bench
