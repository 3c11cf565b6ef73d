// Package khook installs, keeps in step and removes the kernel hooks that keep
// the director's own network stack off the traffic uvsd owns.
//
// uvsd reads frames with AF_PACKET ETH_P_ALL taps, which see a frame in
// __netif_receive_skb_core before the netdev ingress hook runs. A netdev
// ingress chain that drops the frames uvsd handles therefore leaves uvsd its
// copy while the kernel never answers a VIP with a RST or an ICMP error,
// never forwards an untranslated NAT reply a second time and never delivers
// a FULLNAT reply to a local socket.
//
// All hooks live in one nftables table of family netdev named "uvs"
// (TableName), with one base chain per served interface hooked at ingress and
// named sets per interface, so that uvsd --cleanup (Cleanup) can find and
// delete what a crashed uvsd left behind. ARP and NDP are never matched.
//
// The ruleset, per served interface (IPv4 shown; IPv6 is the same with ip6):
//
//	ip daddr . meta l4proto . th dport @svc4_IF counter drop      # VIP:port services
//	ip daddr . meta l4proto @any4_IF counter drop                   # port-0 and fwmark services
//	ip saddr . meta l4proto . th sport @nat4_IF fib daddr type != local counter drop  # NAT replies
//	ip daddr . meta l4proto . th dport @lip4_IF counter drop      # FULLNAT local address ranges
//	ip daddr @vip4_IF icmp type {3,4,11,12} counter drop           # ICMP errors about VIP flows
//
// NAT replies addressed to one of the director's own addresses (a health
// check of a real server, for example) are left to the kernel.
package khook
