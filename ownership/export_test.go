package ownership

// ClassifyUnlimited is Classify walking every IPv6 extension header, as
// nf_tables does (ipv6_find_hdr): what the nftables rules do with a Set.
func (s *Set) ClassifyUnlimited(frame []byte) Verdict { return s.classify(frame, -1) }
