// Package sched is the IPVS scheduling core: the service/destination model
// and every IPVS scheduler (rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh
// twos, plus none), plus persistence decisions. It contains no packet code.
//
// A Service (NewService) holds its destinations in kernel list order (most
// recently added first) and publishes an immutable snapshot of them, with
// the bound scheduler and its precomputed tables, through an atomic
// pointer on every AddDest, EditDest, DelDest and Update. Schedule and
// ScheduleWhy read one snapshot and never allocate; ScheduleWhy fills a
// fixed-size Reason that is only formatted when printed. SchedulePersistent
// makes the whole new-connection decision of a persistent service
// (templates: PPC, PCC, PFWMC) against a Templates store. Time only enters
// through Options.Now and Tick, randomness only through Options.Rand, so
// every decision is reproducible in tests and in the simulator.
//
// See README.md for one section per scheduler.
package sched
