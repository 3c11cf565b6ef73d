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
// The rules drop exactly the frames an ownership.Set classifies as
// ownership.Director; ownership.Shared frames (ARP requests and neighbour
// solicitations for addresses uvsd answers for) and everything else pass.
// The one difference, listed in package ownership's documentation: the
// kernel walks every IPv6 extension header (ipv6_find_hdr), so a frame with
// more than ownership.MaxExtHeaders of them before an owned transport
// header is dropped although Classify calls it Kernel.
//
// All hooks live in one nftables table of family netdev named "uvs"
// (TableName), with per served interface one base chain hooked at ingress,
// two regular chains for ICMP errors and named sets. The table is created
// with NFT_TABLE_F_OWNER (Linux 5.12) on a netlink socket Hooks keeps open
// until Remove: only that socket can change or delete the table, and the
// kernel deletes it when the socket closes, so SIGKILL, a panic or the OOM
// killer leave no rule behind. On a kernel that refuses the flag the table
// is an ordinary one (Hooks.Fallback says why) and uvsd --cleanup
// (Cleanup) deletes what a crashed uvsd left.
//
// The ruleset, per served interface (IPv4 shown; IPv6 is the same with ip6,
// ICMPv6 types 1-4 and the quoted IPv6 header's fixed offsets). The
// EtherType is read from the link-layer header, where a VLAN tag the kernel
// moved into skb metadata is seen again (nft_payload_copy_vlan), so tagged
// frames never match; "meta l4proto" and "th" need the header valid as
// nft_set_pktinfo_ipv4_validate sees it. "ports" is a 3-byte load of the
// transport header that only checks that both ports are there and that the
// packet is not a non-first fragment: the fast path of 1, 2 and 4-byte
// loads checks neither (nft_payload_fast_eval).
//
//	chain in_IF {
//	  ether type ip  ip daddr . meta l4proto @any4_IF counter drop                   # port-0 services
//	  ether type ip  ip daddr . meta l4proto ports . th dport @svc4_IF counter drop  # services
//	  ether type ip  ip daddr . meta l4proto ports . th dport @lip4_IF counter drop  # FULLNAT replies
//	  ether type ip  ip saddr . meta l4proto ports . th sport @nat4_IF ip daddr != @loc4_IF counter drop  # NAT replies
//	  ether type ip  meta l4proto icmp  @th,0,64 (type & 0xf7 in 3-4: 3, 4, 11, 12) jump icmp4_IF
//	}
//	chain icmp4_IF {
//	  ip daddr @vip4_IF counter drop                                   # errors to a VIP
//	  @th,64,8 0x4N  ip daddr . quoted saddr . quoted protocol . quoted sport @fic4_IF counter drop  # about FULLNAT
//	  ip daddr @loc4_IF return
//	  @th,64,8 0x4N  quoted daddr . quoted protocol . quoted dport @nat4_IF counter drop  # about NAT
//	}
//
// The quoted IPv4 header's length N (5 to 15) fixes the offset of its
// ports, so each quoted-packet rule exists once per N. The fic set holds,
// for each local range, local . local . protocol . first-last.
package khook
