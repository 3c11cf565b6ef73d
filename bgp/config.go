package bgp

import "github.com/uvs-lb/uvs/bgp/bgpconfig"

// The announcer's configuration and the parsers of its flags live in
// bgpconfig (which links no GoBGP); these are their names here.

// Config is what the announcer says to whom (bgpconfig.Config).
type Config = bgpconfig.Config

// Peer is one BGP neighbour (bgpconfig.Peer).
type Peer = bgpconfig.Peer

// ParsePeer parses a --bgp-peer value (bgpconfig.ParsePeer).
func ParsePeer(s string) (Peer, error) { return bgpconfig.ParsePeer(s) }

// ParseAS parses an AS number (bgpconfig.ParseAS).
func ParseAS(s string) (uint32, error) { return bgpconfig.ParseAS(s) }

// ParseCommunity parses a community (bgpconfig.ParseCommunity).
func ParseCommunity(s string) (uint32, error) { return bgpconfig.ParseCommunity(s) }

// FormatCommunity formats a community (bgpconfig.FormatCommunity).
func FormatCommunity(c uint32) string { return bgpconfig.FormatCommunity(c) }
