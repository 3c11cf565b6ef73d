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
// ICMPv6 types 1-4, the quoted IPv6 header's fixed offsets, and for a
// fragment the first fragment header's offset and M flag, "exthdr frag").
// "is" matches the family's frames untagged or with one 802.1Q tag: meta
// protocol (skb->protocol, the EtherType after a tag the kernel moved to
// skb metadata before the hook) is the family's, and the EtherType read
// from the link-layer header, where that tag is seen again
// (nft_payload_copy_vlan), is not 802.1ad. "meta l4proto" and "th" need
// the header valid as nft_set_pktinfo_ipv4_validate sees it. "ports" is a
// 3-byte load of the transport header that only checks that both ports
// are there and that the packet is not a non-first fragment: the fast path
// of 1, 2 and 4-byte loads checks neither (nft_payload_fast_eval).
// Fragments, first or not, are decided by the first four rules, by their
// addresses and protocol alone (what every fragment carries); those not
// uvsd's are accepted there, so that no rule below sees a fragment.
//
//	chain in_IF {
//	  is ip  fragment  ip daddr . meta l4proto @fds4_IF counter drop                 # to a service's or local range's address
//	  is ip  fragment  ip saddr . meta l4proto @fsr4_IF ip daddr != @loc4_IF counter drop  # from a NAT real server
//	  is ip  fragment  meta l4proto icmp  ip daddr @vip4_IF counter drop             # ICMP to a VIP
//	  is ip  fragment  accept
//	  is ip  ip daddr . meta l4proto @any4_IF counter drop                           # port-0 services
//	  is ip  ip daddr . meta l4proto ports . th dport @svc4_IF counter drop          # services
//	  is ip  ip daddr . meta l4proto ports . th dport @lip4_IF counter drop          # FULLNAT replies
//	  is ip  ip saddr . meta l4proto ports . th sport @nat4_IF ip daddr != @loc4_IF counter drop  # NAT replies
//	  is ip  ip saddr . meta l4proto ports @naa4_IF ip daddr != @loc4_IF counter drop  # NAT replies, any port (port-0 services)
//	  is ip  meta l4proto icmp  @th,0,64 (type & 0xf7 in 3-4: 3, 4, 11, 12) jump icmp4_IF
//	}
//	chain icmp4_IF {
//	  ip daddr @vip4_IF counter drop                                   # errors to a VIP
//	  @th,64,8 0x4N  ip daddr . quoted saddr . quoted protocol . quoted sport @fic4_IF counter drop  # about FULLNAT
//	  @th,64,8 0x4N  ip daddr . quoted saddr @slf4_IF  quoted daddr . quoted protocol . 0 (4 bytes after the quote loaded) @tun4_IF counter drop  # about the director's IPIP/GRE packet
//	  @th,64,8 0x4N  ip daddr . quoted saddr @slf4_IF  quoted daddr . quoted protocol . quoted dport @tun4_IF counter drop  # about its GUE packet
//	  ip daddr @loc4_IF return
//	  @th,64,8 0x4N  quoted daddr . quoted protocol . quoted dport @nat4_IF counter drop  # about NAT
//	  @th,64,8 0x4N  quoted daddr . quoted protocol (dport loaded) @naa4_IF counter drop  # about NAT, any port
//	}
//
// The quoted IPv4 header's length N (5 to 15) fixes the offset of its
// ports, so each quoted-packet rule exists once per N. The fic set holds,
// for each local range, local . local . protocol . first-last; the slf set
// each IPv4 director address twice (nftables compares a loaded field with
// another only through a concatenated set key: the quoted source is the
// error's destination); the tun set each TUN real server . outer protocol
// . GUE port (0 for IPIP and GRE). IPv6 has no tunnel rules
// (ip_vs_in_icmp_v6 has no tunnel handling).
package khook
