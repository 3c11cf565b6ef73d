// Package sim is the engine of uvs-sim: it replays a workload through the
// scheduling core (package sched) on a simulated clock and reports where the
// connections went.
//
// Everything is deterministic. The clock is simulated (a heap of departures,
// no wall-clock time anywhere), every random choice — arrival times, hold
// times, clients, and the twos scheduler's draws — comes from math/rand/v2
// PCG generators seeded from one seed, and ties between events at the same
// instant are broken by a fixed order. The same inputs and seed therefore
// give byte-identical output.
//
// Inputs are a rules file in ipvsadm save format (services and destinations,
// applied in file order, so destinations end up in kernel list order: most
// recently added first), a workload (generated from flags, or a trace CSV),
// and an optional events file that changes destinations at given times. Bad
// input is reported as an *InputError naming the file, line and token, before
// anything is simulated.
//
// Connection accounting follows the kernel (net/netfilter/ipvs/ip_vs_conn.c, ip_vs_bind_dest and ip_vs_conn_expire): a
// new connection is bound inactive; TCP turns active at once (the SYN is
// processed right after scheduling); UDP never becomes active; the counters
// drop when the connection ends (arrival + hold time).
package sim
