// Package keepalived reads keepalived.conf, the configuration of
// keepalived's LVS half (virtual_server, virtual_server_group, real_server
// and the health checkers), and says which IPVS table keepalived would
// install at start.
//
// Entry points: Load and Parse return a typed Config (virtual servers
// with keepalived's defaults and inheritance applied, groups, checkers),
// the Diagnostics keepalived would log, and a fatal *Error only when the
// file cannot be used at all. Config.Commands turns the Config into the
// ipvsadm.Commands that build the start-up table (control.State.ApplyAll
// applies them).
//
// # Reading (lib/parser.c)
//
// Lines longer than 1023 bytes are dropped with a warning. '!' and '#'
// start a comment anywhere outside double quotes ("\!" and "\#" are
// literal). '{' and '}' outside quotes are split onto their own lines,
// so "virtual_server 10.0.0.1 80{" and "{" on the next line both work.
// Words are separated by blanks; "..." is one word without its quotes
// (no escapes). Keywords are case-sensitive.
//
// include, includer, includem, includew, includeb and includea take a
// glob(3) pattern with csh braces; relative patterns are resolved against
// the including file's directory (keepalived chdirs there); matches are
// read in sorted order, directories skipped. A plain include that matches
// nothing is a warning, the strict variants an error diagnostic. Includes
// are recognised before '@' and '$' processing, as in keepalived.
//
// "@ID line" keeps the line only when ID equals Options.ConfigID (or
// Options.AlsoID), "@^ID line" only when it equals neither. keepalived's
// config-id defaults to the first label of the host name; uvsd passes the
// short host name as ConfigID and "uvs" as AlsoID, and an empty ConfigID
// (tests) matches no "@ID". See "Sharing one file with keepalived" below.
//
// "$NAME=VALUE" defines NAME; "$NAME" (followed by a blank, ',', ')' or
// the end) and "${NAME}" are replaced recursively at use, undefined names
// stay literal. A value ending in '\' continues on the next lines (a
// multi-line definition) and is replayed line by line when used alone on
// a line. Predefined: ${_PWD}, ${_INSTANCE}, ${_HASH} ('#', so
// "$X=${_HASH}" comments out "$X ..." lines), ${_BANG}, ${_ENV NAME}
// (Options.Getenv) and ${_RANDOM [MIN [MAX]]}, which is deterministic
// here (MIN, default 0). "~SEQ(var, start[, step], end) rest", "~SEQx"
// (hex) and "~LST(var, v1, v2, ...) rest" repeat rest once per value.
// Lines produced by a definition or a sequence carry the position of the
// line that used it. Expansion is bounded (16 KiB per line, about a
// million lines and 64 MiB in all); beyond that Load fails.
//
// Script keywords (misc_path, notify_up, notify_down, quorum_up,
// quorum_down) are re-split from the raw line with double and single
// quotes and backslashes kept, as install_keyword_quoted does; the
// second and third words are the user and [:]group. The command string
// itself is not split into argv here.
//
// # What is read, what is ignored
//
// Read: global_defs' router_id, lvs_timeouts (Commands emits --set),
// lvs_flush, lvs_flush_on_stop, lvs_sync_daemon (Config.SyncDaemon),
// default_interface, rs_init_notifies, script_user, the notify FIFOs;
// vrrp_instance (Config.VRRP, below); virtual_server_group;
// virtual_server with every keyword
// of keepalived's check_parser.c (old names lb_algo and lb_kind included);
// real_server; TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, SMTP_CHECK (with
// the deprecated host{} sub-blocks, each its own checker), DNS_CHECK,
// UDP_CHECK, PING_CHECK, FILE_CHECK (resolved to its top-level track_file
// block, Config.TrackFiles; vrrp_track_file is the old name) and
// BFD_CHECK. nb_get_retry is the
// deprecated alias of retry in HTTP_GET/SSL_GET (a warning) and an
// unknown keyword elsewhere, as in keepalived.
//
// Accepted and listed in Config.Ignored, never an error:
// vrrp_sync_group, vrrp_script, static_ipaddress, static_routes,
// bfd_instance and the other non-LVS sections, and
// global_defs itself (its non-LVS keywords are accepted silently).
//
// # VRRP instances and the sync daemon
//
// keepalived's VRRP half is run by keepalived itself (keepalived --vrrp);
// uvsd only follows it, so a vrrp_instance is read for what uvsd needs
// (VRRPInstance): interface, virtual_router_id (1..255), priority
// (1..255, default 100), state MASTER|BACKUP, advert_int (seconds, up to
// 6 decimals, 0.01..255, default 1 s), nopreempt/preempt, and the
// virtual_ipaddress and virtual_ipaddress_excluded lines "ADDR[/LEN] [brd
// X] [dev IF] [scope S] [label L] [no_track] ..." (the prefix, /32 or /128
// by default, and dev are kept). The other keywords of keepalived 2.2.7's
// vrrp_instance (authentication, track_*, notify*, unicast_peer, garp_*,
// use_vmac, ...) are accepted silently; any other word is "Unknown
// keyword", a warning, as keepalived logs it. Values keepalived rejects are
// diagnostics with keepalived's wording: "(VI_1): VRID '0' not valid - must
// be between 1 & 255", "VRRP parsed invalid IP x.x.x.90. skipping IP...",
// "(VI_1) unknown state 'EQUAL', defaulting to BACKUP". An instance without
// a valid virtual_router_id or an interface (global_defs
// default_interface is the fallback) is an error and is left out of
// Config.VRRP: keepalived's VRRP process exits on such a file.
//
// global_defs' "lvs_sync_daemon IFNAME [[inst] VI_NAME] [id N] [maxlen L]
// [port P] [ttl T] [group ADDR]", its old positional form "IFNAME VI_NAME
// [SYNCID]" and the deprecated in-instance "lvs_sync_daemon_interface
// IFNAME" give Config.SyncDaemon: the daemon keepalived would start as
// backup and switch with that instance's role. id defaults to the
// instance's virtual_router_id. Without an instance keepalived does not
// manage the daemon (a warning, SyncDaemon nil); an instance that does not
// exist is an error (SyncDaemon nil).
//
// # Sharing one file with keepalived
//
// keepalived --vrrp and uvsd can read the same keepalived.conf, but the
// lvs_sync_daemon directive must be hidden from keepalived: Debian's
// keepalived 2.2.7 run as "keepalived --vrrp" dies with SIGSEGV at start
// when the file names a sync daemon and the kernel has no ip_vs (the
// deprecated lvs_sync_daemon_interface makes it exit with "Can't
// initialize ipvs"), while "keepalived -t" accepts the file. Write the line
// with uvs's config-id:
//
//	global_defs {
//	@uvs lvs_sync_daemon eth1 inst VI_1 id 51
//	}
//
// keepalived (config-id = host name) drops it; uvsd (Options.AlsoID
// "uvs") reads it. "@^uvs LINE" is the converse: keepalived's only.
// testdata/ha/keepalived.conf is a complete example.
//
// # Diagnostics
//
// Messages use keepalived's wording where it has one: "Unknown keyword
// 'foo'", "PARSER : unknown [dr] routing method.", "number '0' outside
// range [1, 2678400]", "Invalid virtual server IP address 'x.x.x.90' -
// skipping", "no scheduler set, setting default 'wlc'". A bad value is an
// SevError diagnostic and the keyword is ignored; a bad virtual or real
// server address skips that block. Fatal (*Error, nothing returned): an
// unreadable main file, an extra '}' and a block left open at the end of
// the input.
//
// # Deviations from keepalived
//
//   - The block of an unknown keyword is skipped as a whole (keepalived
//     ignores its '{' and lets its '}' close the enclosing block early).
//   - FULLNAT, uvs's extension, is written in DPVS's spelling: lb_kind
//     (lvs_method) FNAT (FULLNAT is accepted too) and laddr_group_name
//     NAME naming a top-level "local_address_group NAME { ADDR [IFACE] ...
//     }" (ranges as in virtual_server_group). Stock keepalived rejects
//     both. Other DPVS keywords (syn_proxy, daddr_group_name,
//     establish_timeout, lb_algo conhash) stay unknown.
//   - A real server of the other address family than its service is
//     skipped unless it is tunnelled, with a message naming the line.
//   - Group-level checks keepalived makes when it talks to the kernel
//     (two virtual servers on one group) are reduced to: a service or
//     destination named twice is added once (keepalived treats EEXIST
//     as success).
//   - A virtual server with a sorry server and no usable real server is
//     kept (its sorry server is the pool); without either it is dropped
//     with keepalived's "has no real servers - ignoring".
//   - Commands describes the table before any checker has run: real
//     servers without an alpha checker are up; FILE_CHECK and BFD_CHECK
//     states that keepalived reads from files and sessions at start are
//     not consulted.
package keepalived
