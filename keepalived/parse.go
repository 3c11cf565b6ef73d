package keepalived

import (
	"bytes"
	"io"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/uvs-lb/uvs/sched"
	"github.com/uvs-lb/uvs/spec"
)

// Load reads a keepalived.conf file (and its includes).
func Load(name string, opt Options) (*Config, []Diagnostic, error) {
	var data []byte
	var err error
	if opt.FS != nil {
		data, err = fs.ReadFile(opt.FS, strings.TrimPrefix(path.Clean(name), "/"))
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, nil, &Error{Pos: Pos{File: name}, Msg: "cannot read configuration: " + err.Error()}
	}
	return Parse(name, bytes.NewReader(data), opt)
}

// Parse reads a configuration from r; name is used in positions and as
// the base of relative includes.
func Parse(name string, r io.Reader, opt Options) (*Config, []Diagnostic, error) {
	lines, diags, err := readAll(name, r, opt)
	if err != nil {
		return nil, diags, err
	}
	roots, err := buildTree(lines, &diags)
	if err != nil {
		return nil, diags, err
	}
	p := &parser{cfg: &Config{LocalAddressGroups: map[string][]netip.Addr{}, TrackFiles: map[string]*TrackFile{}}, diags: diags}
	p.top(roots)
	p.finish()
	return p.cfg, p.diags, nil
}

// node is a line and, when a "{" followed it, its block.
type node struct {
	line
	kids  []*node
	block bool
}

func (n *node) arg(i int) string {
	if i < len(n.Words) {
		return n.Words[i]
	}
	return ""
}

func buildTree(lines []line, diags *[]Diagnostic) ([]*node, error) {
	root := &node{block: true}
	stack := []*node{root}
	for _, l := range lines {
		cur := stack[len(stack)-1]
		switch {
		case len(l.Words) == 1 && l.Words[0] == "{":
			var last *node
			if len(cur.kids) > 0 {
				last = cur.kids[len(cur.kids)-1]
			}
			if last == nil || last.block {
				*diags = append(*diags, diag(l.Pos, SevWarning, "Unexpected '{' - ignoring"))
				last = &node{line: l}
				cur.kids = append(cur.kids, last)
			}
			last.block = true
			stack = append(stack, last)
		case len(l.Words) == 1 && l.Words[0] == "}":
			if len(stack) == 1 {
				return nil, &Error{Pos: l.Pos, Token: "}", Msg: "Extra '}' found"}
			}
			stack = stack[:len(stack)-1]
		default:
			if len(l.Words) == 0 {
				continue
			}
			cur.kids = append(cur.kids, &node{line: l})
		}
	}
	if len(stack) > 1 {
		open := stack[len(stack)-1]
		return nil, &Error{Pos: open.Pos, Token: open.arg(0), Msg: "Missing '}' at end of configuration block"}
	}
	return root.kids, nil
}

type parser struct {
	cfg   *Config
	diags []Diagnostic
	// seenVRRP are the vrrp_instance names read, kept or not.
	seenVRRP map[string]bool
}

func (p *parser) warn(n *node, format string, a ...any) {
	p.diags = append(p.diags, diag(n.Pos, SevWarning, format, a...))
}

func (p *parser) errorf(n *node, format string, a ...any) {
	p.diags = append(p.diags, diag(n.Pos, SevError, format, a...))
}

func (p *parser) unknown(n *node) {
	p.warn(n, "Unknown keyword '%s'", n.arg(0))
}

// ignoredTop are top-level sections of keepalived that uvs accepts and
// does not act on.
var ignoredTop = map[string]bool{
	"vrrp_sync_group": true, "vrrp_script": true,
	"track_process": true, "static_ipaddress": true, "static_routes": true,
	"static_rules": true, "bfd_instance": true, "linkbeat_interfaces": true, "garp_group": true,
	"net_namespace": true, "net_namespace_ipvsadm": true, "instance": true, "use_pid_dir": true,
	"vrrp_track_process": true, "virtual_ipaddress": true, "notification_email": true,
	"child_wait_time": true, "namespace_with_ipsets": true, "use_instance": true,
	// DPVS dialect blocks other than local_address_group.
	"deny_address_group": true, "allow_address_group": true, "tunnel_group": true, "dpdk_interface": true,
}

func (p *parser) top(nodes []*node) {
	for _, n := range nodes {
		switch n.arg(0) {
		case "global_defs":
			p.cfg.Ignored = append(p.cfg.Ignored, Section{Pos: n.Pos, Name: "global_defs"})
			p.global(n)
		case "virtual_server_group":
			p.group(n)
		case "virtual_server":
			p.virtualServer(n)
		case "local_address_group":
			p.localAddressGroup(n)
		case "track_file", "vrrp_track_file":
			p.trackFile(n)
		case "vrrp_instance":
			p.vrrpInstance(n)
		default:
			if ignoredTop[n.arg(0)] {
				p.cfg.Ignored = append(p.cfg.Ignored, Section{Pos: n.Pos, Name: n.arg(0)})
				continue
			}
			p.unknown(n)
		}
	}
}

// globalKnown are global_defs keywords keepalived has that uvs ignores.
var globalKnown = strings.Fields(`notification_email notification_email_from smtp_server smtp_helo_name
smtp_connect_timeout smtp_alert smtp_alert_vrrp smtp_alert_checker checker_log_all_failures
vrrp_mcast_group4 vrrp_mcast_group6 vrrp_garp_master_delay vrrp_garp_master_repeat
vrrp_garp_lower_prio_delay vrrp_garp_lower_prio_repeat vrrp_garp_master_refresh
vrrp_garp_master_refresh_repeat vrrp_garp_interval vrrp_gna_interval vrrp_lower_prio_no_advert
vrrp_higher_prio_send_advert vrrp_version vrrp_iptables vrrp_ipsets vrrp_check_unicast_src
vrrp_skip_check_adv_addr vrrp_strict vrrp_priority vrrp_no_swap vrrp_rt_priority vrrp_cpu_affinity
checker_priority checker_no_swap checker_rt_priority checker_cpu_affinity bfd_priority bfd_no_swap
bfd_rt_priority snmp_socket enable_snmp_vrrp enable_snmp_checker enable_snmp_rfc enable_snmp_rfcv2
enable_snmp_rfcv3 enable_traps enable_snmp_keepalived notify_fifo notify_fifo_script vrrp_notify_fifo
vrrp_notify_fifo_script lvs_notify_fifo lvs_notify_fifo_script enable_script_security script_user
dynamic_interfaces no_email_faults default_interface net_namespace namespace_with_ipsets instance
process_names process_name vrrp_process_name checker_process_name bfd_process_name lvs_process_name
vrrp_netlink_cmd_rcv_bufs vrrp_netlink_cmd_rcv_bufs_force vrrp_netlink_monitor_rcv_bufs
vrrp_netlink_monitor_rcv_bufs_force lvs_netlink_cmd_rcv_bufs lvs_netlink_cmd_rcv_bufs_force
lvs_netlink_monitor_rcv_bufs lvs_netlink_monitor_rcv_bufs_force rs_init_notifies no_checker_emails
vrrp_min_garp vrrp_startup_delay vrrp_rx_bufs_policy vrrp_rx_bufs_multiplier random_seed
nftables nftables_priority nftables_ifindex nftables_counters nftables_ipvs nftables_ipvs_priority
vrrp_owner_ignore_adverts umask max_auto_priority min_auto_priority_delay reload_time_file
reload_repeat reload_file startup_script startup_script_timeout shutdown_script
shutdown_script_timeout tmp_config_directory iptables ipsets linkbeat_use_polling vrrp_garp_extra_if
vrrp_ipset vrrp_iptables_chain script_user vrrp_version local_address_group data_use_instance
dbus dbus_service_name use_symlink_paths vrrp_track_process child_wait_time fifo_write_vrrp_states_on_reload
reload_check_config vrrp_accept vrrp_garp_interval vrrp_gna_interval lvs_flush_onstop lvs_flush_on_stop lvs_flush`)

var globalSet = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range globalKnown {
		m[k] = true
	}
	return m
}()

func (p *parser) global(n *node) {
	g := &p.cfg.Global
	for _, k := range n.kids {
		switch k.arg(0) {
		case "router_id":
			g.RouterID = k.arg(1)
		case "lvs_timeouts":
			for i := 1; i+1 < len(k.Words); i += 2 {
				v, ok := p.uint(k, k.Words[i+1], 1, math.MaxInt32)
				if !ok {
					continue
				}
				switch k.Words[i] {
				case "tcp":
					g.TimeoutTCP = uint32(v)
				case "tcpfin":
					g.TimeoutTCPFin = uint32(v)
				case "udp":
					g.TimeoutUDP = uint32(v)
				default:
					p.errorf(k, "Unknown option %s specified for lvs_timeouts", k.Words[i])
				}
			}
		case "lvs_flush":
			g.LVSFlush = true
		case "lvs_flush_on_stop", "lvs_flush_onstop":
			g.LVSFlushOnStop = true
		case "lvs_sync_daemon":
			g.LVSSyncDaemon = append([]string(nil), k.Words[1:]...)
			p.syncDaemon(k)
		case "default_interface":
			g.DefaultInterface = k.arg(1)
		case "rs_init_notifies":
			g.RSInitNotifies = true
		case "script_user":
			g.ScriptUser, g.ScriptGroup = k.arg(1), k.arg(2)
		case "checker_log_all_failures":
			g.CheckerLogAllFailures = true
		case "notify_fifo":
			g.NotifyFIFO = k.arg(1)
		case "lvs_notify_fifo":
			g.LVSNotifyFIFO = k.arg(1)
		case "notify_fifo_script":
			g.NotifyFIFOScript = k.arg(1)
		case "lvs_notify_fifo_script":
			g.LVSFIFOScrp = k.arg(1)
		default:
			if !globalSet[k.arg(0)] {
				p.unknown(k)
			}
		}
	}
}

// parseAddr parses an IP address as inet_stosockaddr does (no zones
// beyond netip's, no brackets).
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func (p *parser) port(n *node, s string) (uint16, bool) {
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		p.errorf(n, "Invalid port '%s'", s)
		return 0, false
	}
	return uint16(v), true
}

// uint reads an unsigned decimal in [lo, hi] (read_unsigned_strvec).
func (p *parser) uint(n *node, s string, lo, hi uint64) (uint64, bool) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v < lo || v > hi {
		p.errorf(n, "number '%s' outside range [%d, %d] - %s invalid", s, lo, hi, n.arg(0))
		return 0, false
	}
	return v, true
}

// timer reads a <TIMER>: seconds with up to 6 decimals.
func (p *parser) timer(n *node, s string, min time.Duration) (time.Duration, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > math.MaxUint32/1e6 {
		p.errorf(n, "%s value '%s' is invalid", n.arg(0), s)
		return 0, false
	}
	d := time.Duration(math.Round(f*1e6)) * time.Microsecond
	if d < min {
		p.errorf(n, "%s value '%s' is invalid", n.arg(0), s)
		return 0, false
	}
	return d, true
}

// boolArg reads an optional <BOOL> argument (absent = true).
func (p *parser) boolArg(n *node) (bool, bool) {
	if len(n.Words) < 2 {
		return true, true
	}
	switch n.Words[1] {
	case "on", "true", "yes":
		return true, true
	case "off", "false", "no":
		return false, true
	}
	p.errorf(n, "invalid value for %s - '%s'", n.arg(0), n.Words[1])
	return false, false
}

// script reads a quoted keyword's arguments (install_keyword_quoted):
// the raw line is re-split with double and single quotes, backslashes
// kept; word 1 is the command, words 2 and 3 the user and [:]group.
func script(n *node) *Script {
	w := quotedWords(n.Text)
	if len(w) < 2 {
		return nil
	}
	s := &Script{Cmd: w[1]}
	if len(w) > 2 {
		s.User = w[2]
	}
	if len(w) > 3 {
		s.Group = strings.TrimPrefix(w[3], ":")
	}
	return s
}

// quotedWords is alloc_strvec_quoted: blank-separated words where "..."
// and '...' group (quotes removed) and a backslash keeps the next byte.
func quotedWords(text string) []string {
	var out []string
	var b strings.Builder
	in, started := byte(0), false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '\\' && i+1 < len(text):
			b.WriteByte(c)
			b.WriteByte(text[i+1])
			i++
			started = true
		case in != 0 && c == in:
			in = 0
		case in != 0:
			b.WriteByte(c)
		case c == '"' || c == '\'':
			in, started = c, true
		case c == ' ' || c == '\t':
			if started {
				out = append(out, b.String())
				b.Reset()
				started = false
			}
		default:
			b.WriteByte(c)
			started = true
		}
	}
	if started {
		out = append(out, b.String())
	}
	return out
}

func (p *parser) localAddressGroup(n *node) {
	name := n.arg(1)
	var addrs []netip.Addr
	for _, k := range n.kids {
		first, last, ok := parseRange(k.arg(0))
		if !ok {
			p.errorf(k, "Invalid address '%s' in local_address_group %s", k.arg(0), name)
			continue
		}
		for a := first; ; a = a.Next() {
			addrs = append(addrs, a)
			if a == last || len(addrs) > 65536 {
				break
			}
		}
	}
	p.cfg.LocalAddressGroups[name] = addrs
}

// trackFile reads a top-level track_file (or vrrp_track_file) block.
func (p *parser) trackFile(n *node) {
	name := n.arg(1)
	if name == "" {
		p.errorf(n, "%s has no name - skipping", n.arg(0))
		return
	}
	if p.cfg.TrackFiles[name] != nil {
		p.errorf(n, "track_file %s already defined - ignoring", name)
		return
	}
	tf := &TrackFile{Pos: n.Pos, Name: name}
	for _, k := range n.kids {
		switch k.arg(0) {
		case "file":
			tf.Path = k.arg(1)
		case "weight":
			v, err := strconv.ParseInt(k.arg(1), 10, 32)
			if err != nil || v == math.MinInt32 {
				p.errorf(k, "weight %s is invalid", k.arg(1))
				continue
			}
			tf.Weight = v
			tf.Reverse = k.arg(2) == "reverse"
		case "init_file":
			tf.Init = true
			for _, w := range k.Words[1:] {
				if w == "overwrite" {
					tf.InitOverwrite = true
					continue
				}
				v, err := strconv.ParseInt(w, 10, 64)
				if err != nil {
					p.errorf(k, "track file init value %s is invalid", w)
					continue
				}
				tf.InitValue = v
			}
		default:
			p.unknown(k)
		}
	}
	if tf.Path == "" {
		p.errorf(n, "No file set for track_file %s - removing", name)
		return
	}
	p.cfg.TrackFiles[name] = tf
}

// parseRange parses IP, IP-LASTOCTET/LASTGROUP, IP-IP and IP/PREFIX.
func parseRange(s string) (netip.Addr, netip.Addr, bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Addr{}, netip.Addr{}, false
		}
		first := pfx.Masked().Addr()
		last := first
		bits := first.BitLen() - pfx.Bits()
		b := last.AsSlice()
		for i := len(b) - 1; i >= 0 && bits > 0; i-- {
			n := min(bits, 8)
			b[i] |= byte(1<<n - 1)
			bits -= n
		}
		last, _ = netip.AddrFromSlice(b)
		return first, last, true
	}
	lo, hi, rng := strings.Cut(s, "-")
	first, ok := parseAddr(lo)
	if !ok {
		return netip.Addr{}, netip.Addr{}, false
	}
	if !rng {
		return first, first, true
	}
	if last, ok := parseAddr(hi); ok {
		if last.BitLen() != first.BitLen() || last.Less(first) {
			return netip.Addr{}, netip.Addr{}, false
		}
		return first, last, true
	}
	// Last octet (IPv4, decimal) or last group (IPv6, hex).
	b := first.AsSlice()
	if first.Is4() {
		v, err := strconv.ParseUint(hi, 10, 8)
		if err != nil || byte(v) < b[3] {
			return netip.Addr{}, netip.Addr{}, false
		}
		b[3] = byte(v)
	} else {
		v, err := strconv.ParseUint(hi, 16, 16)
		cur := uint64(b[14])<<8 | uint64(b[15])
		if err != nil || v < cur {
			return netip.Addr{}, netip.Addr{}, false
		}
		b[14], b[15] = byte(v>>8), byte(v)
	}
	last, _ := netip.AddrFromSlice(b)
	return first, last, true
}

func (p *parser) group(n *node) {
	g := &VirtualServerGroup{Pos: n.Pos, Name: n.arg(1)}
	if g.Name == "" {
		p.errorf(n, "virtual_server_group has no name")
		return
	}
	for _, k := range n.kids {
		if k.arg(0) == "fwmark" {
			v, ok := p.uint(k, k.arg(1), 1, math.MaxUint32)
			if !ok {
				continue
			}
			e := GroupEntry{Pos: k.Pos, FWMark: uint32(v)}
			if k.arg(2) == "inet6" {
				e.IPv6 = true
			}
			g.Entries = append(g.Entries, e)
			continue
		}
		first, last, ok := parseRange(k.arg(0))
		if !ok {
			p.errorf(k, "VS group %s: invalid address '%s' - skipping", g.Name, k.arg(0))
			continue
		}
		e := GroupEntry{Pos: k.Pos, First: first, Last: last}
		if len(k.Words) > 1 {
			port, ok := p.port(k, k.Words[1])
			if !ok {
				continue
			}
			e.Port = port
		}
		g.Entries = append(g.Entries, e)
	}
	if len(g.Entries) == 0 {
		p.errorf(n, "virtual server group %s has no entries - removing", g.Name)
		return
	}
	p.cfg.Groups = append(p.cfg.Groups, g)
}

// method parses lvs_method/lb_kind arguments (Words[1:]).
func (p *parser) method(n *node) (Method, bool) {
	switch n.arg(1) {
	case "NAT":
		return Method{Fwd: spec.FwdMasq}, true
	case "DR":
		return Method{Fwd: spec.FwdRoute}, true
	case "FNAT", "FULLNAT":
		return Method{Fwd: spec.FwdFullNAT}, true
	case "TUN":
		m := Method{Fwd: spec.FwdTunnel}
		w := n.Words[2:]
		csumSet := false
		for i := 0; i < len(w); i++ {
			switch w[i] {
			case "type":
				if i+1 >= len(w) {
					p.errorf(n, "Missing tunnel type")
					return Method{}, false
				}
				i++
				switch w[i] {
				case "ipip":
					m.TunType = spec.TunIPIP
				case "gue":
					m.TunType = spec.TunGUE
				case "gre":
					m.TunType = spec.TunGRE
				default:
					p.errorf(n, "Unknown tunnel type %s", w[i])
					return Method{}, false
				}
			case "port":
				if i+1 >= len(w) {
					p.errorf(n, "Missing tunnel port")
					return Method{}, false
				}
				i++
				v, ok := p.uint(n, w[i], 1, 65535)
				if !ok {
					return Method{}, false
				}
				m.TunPort = uint16(v)
			case "nocsum":
				m.TunCsum, csumSet = spec.TunNoCsum, true
			case "csum":
				m.TunCsum, csumSet = spec.TunCsumOn, true
			case "remcsum":
				m.TunCsum, csumSet = spec.TunRemCsum, true
			default:
				p.errorf(n, "Unknown tunnel option %s", w[i])
				return Method{}, false
			}
		}
		switch {
		case m.TunType == spec.TunGUE && m.TunPort == 0:
			p.errorf(n, "gue tunnels require a port")
			return Method{}, false
		case m.TunType != spec.TunGUE && m.TunPort != 0:
			p.errorf(n, "port is only valid for gue tunnels")
			return Method{}, false
		case m.TunType == spec.TunIPIP && csumSet:
			p.errorf(n, "checksum options are not valid for ipip tunnels")
			return Method{}, false
		case m.TunType == spec.TunGRE && m.TunCsum == spec.TunRemCsum:
			p.errorf(n, "remcsum is not valid for gre tunnels")
			return Method{}, false
		}
		return m, true
	}
	p.errorf(n, "PARSER : unknown [%s] routing method.", n.arg(1))
	return Method{}, false
}

// vsTiming handles the timing keywords shared by VS and RS blocks.
func (p *parser) timing(k *node, t *Timing) bool {
	switch k.arg(0) {
	case "delay_loop":
		if d, ok := p.timer(k, k.arg(1), time.Microsecond); ok {
			t.DelayLoop = d
		}
	case "connect_timeout":
		if d, ok := p.timer(k, k.arg(1), time.Microsecond); ok {
			t.ConnectTimeout = d
		}
	case "delay_before_retry":
		if d, ok := p.timer(k, k.arg(1), 0); ok {
			t.DelayBeforeRetry = d
		}
	case "warmup":
		if d, ok := p.timer(k, k.arg(1), 0); ok {
			t.Warmup = d
		}
	case "retry":
		v, err := strconv.ParseUint(k.arg(1), 10, 32)
		if err != nil || v == 0 {
			p.errorf(k, "retry value invalid - %s", k.arg(1))
			return true
		}
		t.Retry = int64(v)
	default:
		return false
	}
	return true
}

func (p *parser) virtualServer(n *node) {
	vs := &VirtualServer{Pos: n.Pos, Timing: unsetTiming(), Weight: 1, Quorum: 1, Proto: 0}
	switch n.arg(1) {
	case "group":
		vs.Group = n.arg(2)
		if p.cfg.Group(vs.Group) == nil {
			p.errorf(n, "Virtual server group %s does not exist - skipping virtual server", vs.Group)
			return
		}
	case "fwmark":
		v, ok := p.uint(n, n.arg(2), 1, math.MaxUint32)
		if !ok {
			return
		}
		vs.FWMark = uint32(v)
	default:
		a, ok := parseAddr(n.arg(1))
		if !ok {
			p.errorf(n, "Invalid virtual server IP address '%s' - skipping", n.arg(1))
			return
		}
		vs.Addr = a
		if len(n.Words) > 2 {
			port, ok := p.port(n, n.Words[2])
			if !ok {
				return
			}
			vs.Port = port
		}
	}
	if !n.block {
		p.errorf(n, "Missing '{' at beginning of configuration block")
		return
	}
	protoSet, methodSet, schedSet := false, false, false
	for _, k := range n.kids {
		if p.timing(k, &vs.Timing) {
			continue
		}
		switch kw := k.arg(0); kw {
		case "lvs_sched", "lb_algo":
			if _, ok := sched.LookupScheduler(k.arg(1)); !ok || !keepalivedScheds[k.arg(1)] {
				p.errorf(k, "Invalid lvs_scheduler '%s'", k.arg(1))
				continue
			}
			vs.Scheduler, schedSet = k.arg(1), true
		case "lvs_method", "lb_kind":
			if m, ok := p.method(k); ok {
				vs.Method, methodSet = m, true
			}
		case "protocol":
			switch strings.ToUpper(k.arg(1)) {
			case "TCP":
				vs.Proto = spec.ProtoTCP
			case "UDP":
				vs.Proto = spec.ProtoUDP
			case "SCTP":
				vs.Proto = spec.ProtoSCTP
			default:
				p.errorf(k, "Unknown protocol %s - ignoring", k.arg(1))
				continue
			}
			protoSet = true
		case "persistence_timeout":
			t := uint64(spec.DefaultPersistentTimeout)
			if len(k.Words) > 1 {
				v, ok := p.uint(k, k.Words[1], 1, spec.MaxTimeout)
				if !ok {
					continue
				}
				t = v
			}
			vs.Persistent, vs.Timeout = true, uint32(t)
		case "persistence_granularity":
			m, ok := p.granularity(k, vs)
			if !ok {
				continue
			}
			vs.Netmask = m
			if !vs.Persistent {
				vs.Persistent, vs.Timeout = true, spec.DefaultPersistentTimeout
			}
		case "persistence_engine":
			vs.PE = k.arg(1)
		case "ops":
			vs.OPS = true
		case "flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port", "mh-fallback":
			f, ok := schedFlag(kw, vs.Scheduler)
			if !ok {
				p.errorf(k, "%s is only valid for '%s' scheduler", kw, kw[:2])
				continue
			}
			vs.Flags |= f
		case "inhibit_on_failure":
			vs.Inhibit = true
		case "alpha":
			vs.Alpha = true
		case "omega":
			vs.Omega = true
		case "quorum":
			v, err := strconv.ParseUint(k.arg(1), 10, 32)
			if err != nil || v == 0 {
				p.errorf(k, "Quorum %s must be in [1, %d]. Setting to 1.", k.arg(1), uint64(math.MaxUint32))
				vs.Quorum = 1
				continue
			}
			vs.Quorum = uint32(v)
		case "hysteresis":
			if v, ok := p.uint(k, k.arg(1), 0, math.MaxUint32); ok {
				vs.Hysteresis = uint32(v)
			}
		case "quorum_up":
			vs.QuorumUp = script(k)
		case "quorum_down":
			vs.QuorumDown = script(k)
		case "weight":
			if v, ok := p.uint(k, k.arg(1), 1, math.MaxInt32); ok {
				vs.Weight = int64(v)
			}
		case "sorry_server":
			a, ok := parseAddr(k.arg(1))
			if !ok {
				p.errorf(k, "Invalid sorry server IP address '%s' - skipping", k.arg(1))
				continue
			}
			rs := &RealServer{Pos: k.Pos, Addr: a, Weight: 1, weightSet: true, Timing: unsetTiming()}
			if len(k.Words) > 2 {
				port, ok := p.port(k, k.Words[2])
				if !ok {
					continue
				}
				rs.Port, rs.portWritten = port, true
			}
			if vs.SorryServer != nil && vs.SorryServer.methodSet {
				rs.Method, rs.methodSet = vs.SorryServer.Method, true
			}
			vs.SorryServer = rs
		case "sorry_server_inhibit":
			if vs.SorryServer == nil {
				p.errorf(k, "sorry_server_inhibit must be specified after sorry_server")
				continue
			}
			vs.SorryServerInhibit = true
		case "sorry_server_lvs_method":
			if vs.SorryServer == nil {
				p.errorf(k, "sorry_server_lvs_method must be specified after sorry_server")
				continue
			}
			if m, ok := p.method(k); ok {
				vs.SorryServer.Method, vs.SorryServer.methodSet = m, true
			}
		case "ha_suspend":
			vs.HASuspend = true
		case "virtualhost":
			vs.Virtualhost = k.arg(1)
		case "ip_family":
			switch k.arg(1) {
			case "inet":
			case "inet6":
				vs.IPv6 = true
			default:
				p.errorf(k, "unknown address family %s", k.arg(1))
			}
		case "laddr_group_name":
			vs.LocalAddrGroup = k.arg(1)
		case "smtp_alert", "snmp_name":
		case "real_server":
			if rs := p.realServer(k, vs); rs != nil {
				vs.RealServers = append(vs.RealServers, rs)
			}
		default:
			p.unknown(k)
		}
	}
	p.fixVS(n, vs, protoSet, methodSet, schedSet)
	if vs != nil && len(vs.RealServers) > 0 || vs.SorryServer != nil {
		p.cfg.VirtualServers = append(p.cfg.VirtualServers, vs)
		return
	}
	p.warn(n, "Virtual server %s has no real servers - ignoring", vsName(vs))
}

// keepalivedScheds are the names lvs_sched accepts (case-sensitive).
var keepalivedScheds = map[string]bool{"rr": true, "wrr": true, "lc": true, "wlc": true, "lblc": true,
	"sh": true, "mh": true, "dh": true, "fo": true, "ovf": true, "lblcr": true, "sed": true, "nq": true, "twos": true}

func schedFlag(kw, sch string) (spec.SchedFlags, bool) {
	switch kw {
	case "flag-1":
		return spec.SchedFlag1, true
	case "flag-2":
		return spec.SchedFlag2, true
	case "flag-3":
		return spec.SchedFlag3, true
	case "sh-fallback", "mh-fallback":
		return spec.SchedFlag1, sch == kw[:2]
	case "sh-port", "mh-port":
		return spec.SchedFlag2, sch == kw[:2]
	}
	return 0, false
}

func (p *parser) granularity(k *node, vs *VirtualServer) (uint32, bool) {
	s := k.arg(1)
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		b := a.As4()
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), true
	}
	if v, err := strconv.ParseUint(s, 10, 8); err == nil && v >= 1 && v <= 128 {
		return uint32(v), true
	}
	p.errorf(k, "Invalid persistence_granularity specified - %s", s)
	return 0, false
}

func vsName(vs *VirtualServer) string {
	switch {
	case vs.Group != "":
		return "[" + vs.Group + "]:" + strconv.Itoa(int(vs.Port))
	case vs.FWMark != 0:
		return "FWM " + strconv.FormatUint(uint64(vs.FWMark), 10)
	}
	proto := strings.ToLower(vs.Proto.String())
	return "[" + vs.Addr.String() + "]:" + proto + ":" + strconv.Itoa(int(vs.Port))
}

func (p *parser) realServer(n *node, vs *VirtualServer) *RealServer {
	a, ok := parseAddr(n.arg(1))
	if !ok {
		p.errorf(n, "Invalid real server ip address/port '%s' - skipping", n.arg(1))
		return nil
	}
	rs := &RealServer{Pos: n.Pos, Addr: a, Timing: unsetTiming()}
	if len(n.Words) > 2 {
		port, ok := p.port(n, n.Words[2])
		if !ok {
			return nil
		}
		rs.Port, rs.portWritten = port, port != 0
	}
	for _, k := range n.kids {
		if p.timing(k, &rs.Timing) {
			continue
		}
		switch kw := k.arg(0); kw {
		case "weight":
			if v, ok := p.uint(k, k.arg(1), 0, math.MaxInt32); ok {
				rs.Weight, rs.weightSet = int64(v), true
			}
		case "lvs_method", "lb_kind":
			if m, ok := p.method(k); ok {
				rs.Method, rs.methodSet = m, true
			}
		case "uthreshold":
			if v, ok := p.uint(k, k.arg(1), 0, math.MaxUint32); ok {
				rs.UThreshold = uint32(v)
			}
		case "lthreshold":
			if v, ok := p.uint(k, k.arg(1), 0, math.MaxUint32); ok {
				rs.LThreshold = uint32(v)
			}
		case "inhibit_on_failure":
			if b, ok := p.boolArg(k); ok {
				rs.inhibitT = triOf(b)
			}
		case "alpha":
			if b, ok := p.boolArg(k); ok {
				rs.alphaT = triOf(b)
			}
		case "notify_up", "notify_down":
			s := script(k)
			dst := &rs.NotifyUp
			if kw == "notify_down" {
				dst = &rs.NotifyDown
			}
			if *dst != nil {
				p.errorf(k, "%s script already specified - ignoring %s", kw, k.arg(1))
				continue
			}
			*dst = s
		case "virtualhost":
			rs.Virtualhost = k.arg(1)
		case "smtp_alert", "snmp_name":
		case "TCP_CHECK", "HTTP_GET", "SSL_GET", "MISC_CHECK", "SMTP_CHECK", "DNS_CHECK", "UDP_CHECK",
			"PING_CHECK", "FILE_CHECK", "BFD_CHECK":
			rs.Checkers = append(rs.Checkers, p.checker(k, rs)...)
		default:
			p.unknown(k)
		}
	}
	return rs
}

func triOf(b bool) Tri {
	if b {
		return True
	}
	return False
}

var connKeywords = map[string]bool{"connect_ip": true, "connect_port": true, "bindto": true,
	"bind_port": true, "bind_if": true, "fwmark": true}

// checker parses one checker block; SMTP_CHECK host{} sub-blocks each
// become their own checker.
func (p *parser) checker(n *node, rs *RealServer) []*Checker {
	kind := n.arg(0)
	c := &Checker{Pos: n.Pos, Kind: kind, ConnectIP: rs.Addr, ConnectPort: rs.Port, Timing: unsetTiming()}
	switch kind {
	case "DNS_CHECK":
		c.DNSType, c.DNSName = "SOA", "."
	case "SMTP_CHECK":
		c.HeloName = "smtpchecker.keepalived.org"
	case "HTTP_GET", "SSL_GET":
		c.HTTPProtocol = "1.0"
	case "UDP_CHECK":
		c.MaxReplyLength = 255
	}
	var hosts []*Checker
	for _, k := range n.kids {
		kw := k.arg(0)
		if connKeywords[kw] && kind != "MISC_CHECK" && kind != "FILE_CHECK" && kind != "BFD_CHECK" {
			p.conn(k, c)
			continue
		}
		if kind != "FILE_CHECK" && kind != "BFD_CHECK" && p.ckTiming(k, c) {
			continue
		}
		switch {
		case kw == "alpha" && kind != "FILE_CHECK":
			if b, ok := p.boolArg(k); ok {
				c.alphaT = triOf(b)
			}
		case kw == "log_all_failures":
		case kind == "HTTP_GET" || kind == "SSL_GET":
			p.httpKeyword(k, c)
		case kind == "MISC_CHECK":
			p.miscKeyword(k, c)
		case kind == "UDP_CHECK":
			switch kw {
			case "payload":
				c.Payload = k.arg(1)
			case "require_reply":
				c.RequireReply, c.ReplyPattern = true, k.arg(1)
			case "min_reply_length":
				if v, ok := p.uint(k, k.arg(1), 0, 65535); ok {
					c.MinReplyLength = uint32(v)
				}
			case "max_reply_length":
				if v, ok := p.uint(k, k.arg(1), 0, 65535); ok {
					c.MaxReplyLength = uint32(v)
				}
			default:
				p.unknown(k)
			}
		case kind == "DNS_CHECK" && kw == "type":
			switch t := strings.ToUpper(k.arg(1)); t {
			case "A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA":
				c.DNSType = t
			default:
				p.errorf(k, "DNS_CHECK: unknown type '%s'", k.arg(1))
			}
		case kind == "DNS_CHECK" && kw == "name":
			c.DNSName = k.arg(1)
		case kind == "SMTP_CHECK" && kw == "helo_name":
			c.HeloName = k.arg(1)
		case kind == "SMTP_CHECK" && kw == "host":
			p.warn(k, "SMTP_CHECK 'host' block is deprecated - please use separate SMTP_CHECK blocks")
			h := &Checker{Pos: k.Pos, Kind: kind, ConnectIP: rs.Addr, ConnectPort: rs.Port, Timing: unsetTiming()}
			for _, hk := range k.kids {
				if connKeywords[hk.arg(0)] {
					p.conn(hk, h)
				} else {
					p.unknown(hk)
				}
			}
			hosts = append(hosts, h)
		case kind == "FILE_CHECK" && kw == "track_file":
			c.TrackFile = k.arg(1)
		case kind == "FILE_CHECK" && kw == "weight":
			v, err := strconv.ParseInt(k.arg(1), 10, 32)
			if err != nil || v == math.MinInt32 {
				p.errorf(k, "weight %s is invalid", k.arg(1))
				continue
			}
			c.FileWeight = v
			c.FileHasWeight = true
			if k.arg(2) == "reverse" {
				c.FileReverse = true
			}
		case kind == "BFD_CHECK" && kw == "name":
			c.BFDName = k.arg(1)
		default:
			p.unknown(k)
		}
	}
	if kind == "HTTP_GET" || kind == "SSL_GET" {
		if len(c.URLs) == 0 {
			p.errorf(n, "%s has no url - ignoring checker", kind)
			return nil
		}
	}
	if kind == "SMTP_CHECK" && len(hosts) > 0 {
		for _, h := range hosts {
			h.HeloName, h.Timing, h.alphaT = c.HeloName, c.Timing, c.alphaT
		}
		return hosts
	}
	return []*Checker{c}
}

func (p *parser) ckTiming(k *node, c *Checker) bool {
	if k.arg(0) == "retry" || (k.arg(0) == "nb_get_retry" && (c.Kind == "HTTP_GET" || c.Kind == "SSL_GET")) {
		if k.arg(0) == "nb_get_retry" {
			p.warn(k, "nb_get_retry is deprecated - please use 'retry'")
		}
		v, err := strconv.ParseUint(k.arg(1), 10, 32)
		if err != nil {
			p.errorf(k, "retry value invalid - %s", k.arg(1))
			return true
		}
		c.Retry = int64(v)
		return true
	}
	return p.timing(k, &c.Timing)
}

func (p *parser) conn(k *node, c *Checker) {
	switch k.arg(0) {
	case "connect_ip", "bindto":
		a, ok := parseAddr(k.arg(1))
		if !ok {
			p.errorf(k, "Invalid %s address '%s'", k.arg(0), k.arg(1))
			return
		}
		if k.arg(0) == "connect_ip" {
			c.ConnectIP = a
		} else {
			c.BindTo = a
		}
	case "connect_port", "bind_port":
		v, ok := p.uint(k, k.arg(1), 1, 65535)
		if !ok {
			return
		}
		if k.arg(0) == "connect_port" {
			c.ConnectPort = uint16(v)
		} else {
			c.BindPort = uint16(v)
		}
	case "bind_if":
		c.BindIf = k.arg(1)
	case "fwmark":
		if v, ok := p.uint(k, k.arg(1), 0, math.MaxUint32); ok {
			c.FWMark = uint32(v)
		}
	}
}

func (p *parser) httpKeyword(k *node, c *Checker) {
	switch k.arg(0) {
	case "http_protocol":
		switch k.arg(1) {
		case "1.0", "1.1", "1.0C", "1.0c":
			c.HTTPProtocol = k.arg(1)
		default:
			p.errorf(k, "Invalid http_protocol %s", k.arg(1))
		}
	case "virtualhost":
		c.Virtualhost = k.arg(1)
	case "enable_sni":
		c.EnableSNI = true
	case "sni_name":
		c.SNIName = k.arg(1)
	case "fast_recovery":
		if b, ok := p.boolArg(k); ok {
			c.FastRecovery = b
		}
	case "tls_compliant":
	case "url":
		u := URL{}
		for _, uk := range k.kids {
			switch uk.arg(0) {
			case "path":
				u.Path = uk.arg(1)
			case "digest":
				d := uk.arg(1)
				if len(d) != 32 || strings.Trim(strings.ToLower(d), "0123456789abcdef") != "" {
					p.errorf(uk, "digest '%s' is not 32 hex digits", d)
					continue
				}
				u.Digest = strings.ToLower(d)
			case "status_code":
				for _, w := range uk.Words[1:] {
					lo, hi, rng := strings.Cut(w, "-")
					if !rng {
						hi = lo
					}
					a, e1 := strconv.Atoi(lo)
					b, e2 := strconv.Atoi(hi)
					if e1 != nil || e2 != nil || a < 100 || b > 599 || a > b {
						p.errorf(uk, "Invalid HTTP_GET status code '%s'", w)
						continue
					}
					u.StatusCodes = append(u.StatusCodes, [2]int{a, b})
				}
			case "virtualhost":
				u.Virtualhost = uk.arg(1)
			case "regex":
				u.Regex = uk.arg(1)
			case "regex_no_match", "regex_options", "regex_min_offset", "regex_max_offset", "regex_stack":
			default:
				p.unknown(uk)
			}
		}
		if u.Path == "" {
			p.errorf(k, "url has no path - ignoring")
			return
		}
		if len(u.StatusCodes) == 0 {
			u.StatusCodes = [][2]int{{200, 299}}
		}
		c.URLs = append(c.URLs, u)
	default:
		p.unknown(k)
	}
}

func (p *parser) miscKeyword(k *node, c *Checker) {
	switch k.arg(0) {
	case "misc_path":
		c.MiscPath = script(k)
	case "misc_timeout":
		if v, ok := p.uint(k, k.arg(1), 1, math.MaxUint32/1000000); ok {
			c.MiscTimeout = time.Duration(v) * time.Second
		}
	case "misc_dynamic":
		c.MiscDynamic = true
	case "user":
		if c.MiscPath == nil {
			c.MiscPath = &Script{}
		}
		c.MiscPath.User = k.arg(1)
		c.MiscPath.Group = k.arg(2)
	default:
		p.unknown(k)
	}
}
