// Package sched is the IPVS scheduling core: the service/destination model
// and every IPVS scheduler (rr wrr sh dh lc wlc sed nq lblc lblcr fo ovf mh
// twos), plus persistence decisions. It contains no packet code.
package sched
