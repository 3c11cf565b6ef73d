package keepalived

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// VRRPInstance is what uvsd reads of a vrrp_instance block: enough to
// follow keepalived's VRRP (which addresses it moves, on which interface)
// and to tie the sync daemon to it. keepalived itself runs the protocol.
//
// An instance without a valid virtual_router_id, or without an interface
// (and no global_defs default_interface), is left out of Config.VRRP with
// an error diagnostic: keepalived 2.2.7's VRRP process refuses to start on
// such a file (it exits with a permanent CONFIG error), so nothing would
// move its addresses. A second block of the same name is skipped.
type VRRPInstance struct {
	Pos  Pos
	Name string
	// Interface is `interface` (global_defs default_interface when
	// absent); VRID `virtual_router_id` (1..255); Priority `priority`
	// (1..255, default 100, an invalid value gives the default); State
	// the configured initial `state` ("MASTER" or "BACKUP", "" when
	// absent; an unknown value is "BACKUP", as keepalived defaults it);
	// AdvertInt `advert_int` (seconds with up to 6 decimals, 0.01..255,
	// default 1 s); NoPreempt `nopreempt` (`preempt` clears it).
	Interface string
	VRID      int
	Priority  int
	State     string
	AdvertInt time.Duration
	NoPreempt bool
	// VIPs are virtual_ipaddress and then virtual_ipaddress_excluded
	// (Excluded set), in file order.
	VIPs []VRRPAddress
}

// VRRPAddress is one virtual_ipaddress line: the address with its prefix
// (/32 or /128 when none is given; not masked) and `dev` ("" = the
// instance's interface). Excluded marks a virtual_ipaddress_excluded line
// (keepalived moves it too, but leaves it out of the adverts).
type VRRPAddress struct {
	Prefix   netip.Prefix
	Dev      string
	Excluded bool
}

// SyncDaemon is global_defs' `lvs_sync_daemon IFNAME [[inst] VI_NAME] [id
// N] [maxlen L] [port P] [ttl T] [group ADDR]` (or the old positional form
// `IFNAME VI_NAME [SYNCID]`, or the deprecated `lvs_sync_daemon_interface
// IFNAME` inside a vrrp_instance): the IPVS sync daemon keepalived starts
// as backup and switches with the named VRRP instance's role.
//
// Parse sets Config.SyncDaemon only when keepalived would manage the
// daemon: Instance then names one of Config.VRRP and SyncID is resolved.
type SyncDaemon struct {
	Pos       Pos
	Interface string
	Instance  string
	// SyncID is `id`; -1 when absent while parsing, which Parse replaces
	// with the instance's virtual_router_id (keepalived's default), so
	// a returned SyncDaemon has 0..255.
	SyncID int
	// MaxLen (1..65507), Port (1..65535) and TTL (1..255) are 0 when
	// absent; Group (multicast) is invalid when absent. The kernel's
	// defaults then apply (maxlen from the MTU, 224.0.0.81:8848, TTL 1).
	MaxLen int
	Port   int
	TTL    int
	Group  netip.Addr
}

// Instance returns the named vrrp_instance, or nil.
func (c *Config) Instance(name string) *VRRPInstance {
	for _, vi := range c.VRRP {
		if vi.Name == name {
			return vi
		}
	}
	return nil
}

// VRRPSummary describes the vrrp_instances and the sync daemon in one
// line each, for uvsd --check:
//
//	vrrp_instance VI_1: interface eth0, virtual_router_id 51, priority 100, state MASTER, advert_int 1s, nopreempt, virtual_ipaddress 192.168.200.16/32 192.168.200.17/32 dev eth1, excluded 10.0.0.1/32
//	lvs_sync_daemon eth1 inst VI_1 id 51 (maxlen 1400, port 8849, ttl 2, group 224.0.0.82)
func (c *Config) VRRPSummary() []string {
	var out []string
	for _, vi := range c.VRRP {
		var b strings.Builder
		b.WriteString("vrrp_instance " + vi.Name + ": interface " + vi.Interface +
			", virtual_router_id " + strconv.Itoa(vi.VRID) + ", priority " + strconv.Itoa(vi.Priority))
		if vi.State != "" {
			b.WriteString(", state " + vi.State)
		}
		b.WriteString(", advert_int " + vi.AdvertInt.String())
		if vi.NoPreempt {
			b.WriteString(", nopreempt")
		}
		for _, ex := range []bool{false, true} {
			first := true
			for _, v := range vi.VIPs {
				if v.Excluded != ex {
					continue
				}
				if first {
					if ex {
						b.WriteString(", excluded")
					} else {
						b.WriteString(", virtual_ipaddress")
					}
					first = false
				}
				b.WriteString(" " + v.Prefix.String())
				if v.Dev != "" {
					b.WriteString(" dev " + v.Dev)
				}
			}
		}
		out = append(out, b.String())
	}
	if sd := c.SyncDaemon; sd != nil {
		s := "lvs_sync_daemon " + sd.Interface + " inst " + sd.Instance + " id " + strconv.Itoa(sd.SyncID)
		var opt []string
		if sd.MaxLen != 0 {
			opt = append(opt, "maxlen "+strconv.Itoa(sd.MaxLen))
		}
		if sd.Port != 0 {
			opt = append(opt, "port "+strconv.Itoa(sd.Port))
		}
		if sd.TTL != 0 {
			opt = append(opt, "ttl "+strconv.Itoa(sd.TTL))
		}
		if sd.Group.IsValid() {
			opt = append(opt, "group "+sd.Group.String())
		}
		if len(opt) > 0 {
			s += " (" + strings.Join(opt, ", ") + ")"
		}
		out = append(out, s)
	}
	return out
}

// vrrpKnown are the vrrp_instance keywords of keepalived 2.2.7 that uvs
// accepts without reading them (keepalived's VRRP process acts on them).
// Checked against the binary: keepalived -t reports none of these as
// "Unknown keyword". Blocks among them are skipped whole.
var vrrpKnown = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Fields(`use_vmac vmac_xmit_base use_vmac_addr use_ipvlan unicast_peer
unicast_fault_no_peer old_unicast_checksum native_ipv6 dont_track_primary track_interface track_script
track_file track_process track_bfd mcast_src_ip unicast_src_ip mcast_dst_ip track_src_ip version
unicast_ttl promote_secondaries linkbeat_use_polling virtual_routes virtual_rules accept no_accept
skip_check_adv_addr strict_mode preempt_delay debug notify_backup notify_master notify_fault
notify_stop notify_deleted notify notify_master_rx_lower_pri notify_priority_changes smtp_alert
kernel_rx_buf_size garp_master_delay garp_master_refresh garp_master_repeat garp_master_refresh_repeat
garp_lower_prio_delay garp_lower_prio_repeat down_timer_adverts lower_prio_no_advert
higher_prio_send_advert authentication garp_extra_if check_unicast_src`) {
		m[k] = true
	}
	return m
}()

// vrrpInstance reads a vrrp_instance block (vrrp_parser.c vrrp_handler
// and the instance keywords).
func (p *parser) vrrpInstance(n *node) {
	if len(n.Words) != 2 {
		p.errorf(n, "vrrp_instance must have a name")
		return
	}
	name := n.Words[1]
	if p.seenVRRP[name] {
		p.errorf(n, "vrrp instance %s already defined", name)
		return
	}
	if p.seenVRRP == nil {
		p.seenVRRP = map[string]bool{}
	}
	p.seenVRRP[name] = true
	if !n.block {
		p.errorf(n, "Missing '{' at beginning of configuration block")
		return
	}
	vi := &VRRPInstance{Pos: n.Pos, Name: name, Priority: 100, AdvertInt: time.Second}
	family := 0 // 4 or 6 once the first virtual_ipaddress is read
	for _, k := range n.kids {
		switch kw := k.arg(0); kw {
		case "interface":
			if k.arg(1) == "" {
				p.errorf(k, "(%s) interface requires a name", name)
				continue
			}
			vi.Interface = k.arg(1)
		case "virtual_router_id":
			v, err := strconv.ParseUint(k.arg(1), 10, 8)
			if err != nil || v == 0 {
				p.errorf(k, "(%s): VRID '%s' not valid - must be between 1 & 255", name, k.arg(1))
				continue
			}
			vi.VRID = int(v)
		case "priority":
			v, err := strconv.ParseUint(k.arg(1), 10, 8)
			if err != nil || v == 0 {
				p.errorf(k, "(%s) Priority not valid! must be between 1 & 255. Using default 100", name)
				vi.Priority = 100
				continue
			}
			vi.Priority = int(v)
		case "state":
			switch s := k.arg(1); s {
			case "MASTER":
				vi.State = s
			case "BACKUP":
				if vi.State == "MASTER" {
					p.warn(k, "(%s) state previously set as MASTER - ignoring BACKUP", name)
					continue
				}
				vi.State = s
			default:
				p.errorf(k, "(%s) unknown state '%s', defaulting to BACKUP", name, s)
				vi.State = "BACKUP"
			}
		case "advert_int":
			f, err := strconv.ParseFloat(k.arg(1), 64)
			if err != nil || math.IsNaN(f) || f < 0.01 || f > 255 {
				p.errorf(k, "(%s) Advert interval (%s) not valid! Must be between 0.01 and 255 - ignoring", name, k.arg(1))
				continue
			}
			vi.AdvertInt = time.Duration(math.Round(f*1e6)) * time.Microsecond
		case "nopreempt":
			vi.NoPreempt = true
		case "preempt":
			vi.NoPreempt = false
		case "virtual_ipaddress", "virtual_ipaddress_excluded":
			p.vrrpAddresses(k, vi, &family, kw == "virtual_ipaddress_excluded")
		case "lvs_sync_daemon_interface":
			p.warn(k, "(%s) Specifying lvs_sync_daemon_interface against a vrrp is deprecated. Please use global lvs_sync_daemon", name)
			if sd := p.cfg.SyncDaemon; sd != nil {
				p.errorf(k, "(%s) lvs_sync_daemon_interface has already been specified as %s - ignoring", name, sd.Interface)
				continue
			}
			if k.arg(1) == "" {
				p.errorf(k, "lvs_sync_daemon requires interface")
				continue
			}
			p.cfg.SyncDaemon = &SyncDaemon{Pos: k.Pos, Interface: k.arg(1), Instance: name, SyncID: -1}
		default:
			if !vrrpKnown[kw] {
				p.unknown(k)
			}
		}
	}
	if vi.VRID == 0 {
		p.errorf(n, "(%s) the virtual router id must be set - keepalived will not start; instance not followed", name)
		return
	}
	if len(vi.VIPs) == 0 {
		p.warn(n, "(%s) No VIP specified; at least one is sensible", name)
	}
	p.cfg.VRRP = append(p.cfg.VRRP, vi)
}

// vrrpAddresses reads a virtual_ipaddress or virtual_ipaddress_excluded
// block: one `ADDR[/LEN] [brd X] [dev IF] [scope S] [label L] …` per line
// (vrrp_ipaddress.c parse_ipaddress/alloc_ipaddress).
func (p *parser) vrrpAddresses(blk *node, vi *VRRPInstance, family *int, excluded bool) {
	for _, k := range blk.kids {
		s := k.arg(0)
		addrText, lenText, hasLen := strings.Cut(s, "/")
		a, ok := parseAddr(addrText)
		if !ok || a.Zone() != "" {
			p.errorf(k, "VRRP parsed invalid IP %s. skipping IP...", s)
			continue
		}
		bits := a.BitLen()
		if hasLen {
			v, err := strconv.ParseUint(lenText, 10, 8)
			if err != nil || int(v) > a.BitLen() {
				p.errorf(k, "Invalid address prefix len %s for address %s - using %d", lenText, s, a.BitLen())
			} else {
				bits = int(v)
			}
		}
		v := VRRPAddress{Prefix: netip.PrefixFrom(a, bits), Excluded: excluded}
		for i := 1; i < len(k.Words); i++ {
			switch w := k.Words[i]; w {
			case "dev":
				if i+1 >= len(k.Words) {
					p.errorf(k, "No dev parameter specified for %s", s)
					continue
				}
				i++
				v.Dev = k.Words[i]
			case "brd", "broadcast", "scope", "label", "peer", "preferred_lft", "track_group":
				if i+1 >= len(k.Words) {
					p.errorf(k, "No %s parameter specified for %s", w, s)
					continue
				}
				i++
			case "home", "-nodad", "nodad", "noprefixroute", "autojoin", "no_track":
			default:
				p.errorf(k, "Unknown configuration entry '%s' for ip address - ignoring", w)
			}
		}
		fam := 4
		if a.Is6() {
			fam = 6
		}
		if !excluded {
			if *family == 0 {
				*family = fam
			} else if *family != fam {
				p.errorf(k, "(%s): address family must match VRRP instance [%s] - ignoring", vi.Name, s)
				continue
			}
		}
		vi.VIPs = append(vi.VIPs, v)
	}
}

// syncDaemon reads global_defs' lvs_sync_daemon (global_parser.c
// lvs_syncd_handler): IFNAME, then keywords inst/id/maxlen/port/ttl/group,
// or the old positional VI_NAME (word 2) and SYNCID (word 3).
func (p *parser) syncDaemon(k *node) {
	if sd := p.cfg.SyncDaemon; sd != nil {
		p.errorf(k, "lvs_sync_daemon has already been specified as %s %s - ignoring", sd.Interface, sd.Instance)
		return
	}
	ifname := k.arg(1)
	if ifname == "" {
		p.errorf(k, "lvs_sync_daemon requires interface")
		return
	}
	if len(ifname) >= 16 {
		p.errorf(k, "lvs_sync_daemon interface name '%s' too long - ignoring", ifname)
		return
	}
	sd := &SyncDaemon{Pos: k.Pos, Interface: ifname, SyncID: -1}
	w := k.Words
	// value returns the word after i, or "" (with a diagnostic) when
	// there is none.
	value := func(i int, what string) (string, bool) {
		if i+1 >= len(w) {
			if what == "id" {
				p.errorf(k, "No value specified for lvs_sync_daemon id, defaulting to vrid")
			} else {
				p.errorf(k, "No value specified for lvs_sync_daemon %s - ignoring", what)
			}
			return "", false
		}
		return w[i+1], true
	}
	number := func(s string, lo, hi uint64, what string) (int, bool) {
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil || v < lo || v > hi {
			p.errorf(k, "Invalid lvs_sync_daemon %s (%s) - ignoring", what, s)
			return 0, false
		}
		return int(v), true
	}
	syncID := func(s string) bool {
		v, err := strconv.ParseUint(s, 10, 8)
		if err != nil {
			p.errorf(k, "Invalid syncid (%s) - defaulting to vrid", s)
			return false
		}
		sd.SyncID = int(v)
		return true
	}
	for i := 2; i < len(w); i++ {
		switch w[i] {
		case "inst":
			s, ok := value(i, "inst")
			if !ok {
				continue
			}
			i++
			if sd.Instance != "" {
				p.errorf(k, "lvs_sync_daemon vrrp instance has already been specified as %s - ignoring", sd.Instance)
				continue
			}
			sd.Instance = s
		case "id":
			s, ok := value(i, "id")
			if !ok {
				continue
			}
			i++
			syncID(s)
		case "maxlen":
			if s, ok := value(i, "maxlen"); ok {
				i++
				if v, ok := number(s, 1, 65507, "maxlen"); ok {
					sd.MaxLen = v
				}
			}
		case "port":
			if s, ok := value(i, "port"); ok {
				i++
				if v, ok := number(s, 1, 65535, "port"); ok {
					sd.Port = v
				}
			}
		case "ttl":
			if s, ok := value(i, "ttl"); ok {
				i++
				if v, ok := number(s, 1, 255, "ttl"); ok {
					sd.TTL = v
				}
			}
		case "group":
			s, ok := value(i, "group")
			if !ok {
				continue
			}
			i++
			a, ok := parseAddr(s)
			switch {
			case !ok:
				p.errorf(k, "Invalid lvs_sync_daemon group (%s) - ignoring", s)
			case !a.IsMulticast():
				p.errorf(k, "lvs_sync_daemon group address %s is not multicast - ignoring", s)
			default:
				sd.Group = a
			}
		default:
			switch {
			case i == 2 && sd.Instance == "":
				sd.Instance = w[i]
			case i == 3 && sd.SyncID == -1:
				if syncID(w[i]) {
					p.warn(k, "Please use keyword \"id\" before lvs_sync_daemon SYNCID")
				}
			default:
				p.errorf(k, "Unknown option %s specified for lvs_sync_daemon", w[i])
			}
		}
	}
	p.cfg.SyncDaemon = sd
}

// finishVRRP drops the instances without an interface and ties the sync
// daemon to its instance (vrrp_complete_init):
// without an instance keepalived does not manage the daemon, with an
// unknown one it reports an error; the syncid defaults to the VRID.
func (p *parser) finishVRRP() {
	kept := p.cfg.VRRP[:0]
	for _, vi := range p.cfg.VRRP {
		if vi.Interface == "" {
			vi.Interface = p.cfg.Global.DefaultInterface
		}
		if vi.Interface == "" {
			p.diags = append(p.diags, diag(vi.Pos, SevError, "(%s) Unknown interface! - keepalived will not start; instance not followed", vi.Name))
			continue
		}
		kept = append(kept, vi)
	}
	clear(p.cfg.VRRP[len(kept):])
	p.cfg.VRRP = kept
	sd := p.cfg.SyncDaemon
	if sd == nil {
		return
	}
	if sd.Instance == "" {
		p.diags = append(p.diags, diag(sd.Pos, SevWarning,
			"lvs_sync_daemon %s has no vrrp instance - the sync daemon is not managed", sd.Interface))
		p.cfg.SyncDaemon = nil
		return
	}
	vi := p.cfg.Instance(sd.Instance)
	if vi == nil {
		p.diags = append(p.diags, diag(sd.Pos, SevError,
			"Unable to find vrrp instance %s for lvs_sync_daemon - clearing lvs_syncd config", sd.Instance))
		p.cfg.SyncDaemon = nil
		return
	}
	if sd.SyncID == -1 {
		sd.SyncID = vi.VRID
	}
}
