package ipvsadm

import (
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/uvs-lb/uvs/spec"
)

// IPVS version and connection-table size the listings report.
const (
	IPVSVersion     = "1.2.1"
	DefaultConnTab  = 4096
	maxSvcNameWidth = 33 // IPv4 service names are cut to this many bytes
	maxDstNameWidth = 28 // IPv4 destination names are cut to this many bytes
)

// StatsView holds a service's or destination's 64-bit counters.
type StatsView struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes uint64
}

// RateView holds the estimator's rates (per second).
type RateView struct {
	CPS, InPPS, OutPPS, InBPS, OutBPS uint64
}

// ServiceView is one virtual service as the listings show it. Dests are in
// kernel list order (most recently added first); the formatters sort them
// unless --nosort is given.
type ServiceView struct {
	Service spec.Service
	Dests   []DestView
	Stats   StatsView
	Rate    RateView
}

// DestView is one real server as the listings show it.
type DestView struct {
	Dest                                  spec.Dest
	ActiveConns, InactConns, PersistConns uint32
	Stats                                 StatsView
	Rate                                  RateView
}

// ConnView is one entry of the connection table for -Lnc, in the terms of
// /proc/net/ip_vs_conn: Proto is spec.ProtoIP for fwmark templates, whose
// Virtual address is the mark written as an IPv4 address with port 0.
type ConnView struct {
	Proto   spec.Proto
	Expire  uint32 // remaining seconds
	State   string // "ESTABLISHED", "SYN_RECV", "UDP", "NONE", "ASSURED", ...
	Client  netip.AddrPort
	Virtual netip.AddrPort
	Dest    netip.AddrPort
	PEName  string // persistence engine, "" if none
	PEData  string
}

// ---------------------------------------------------------------------------
// Sorting (libipvs ipvs_cmp_services / ipvs_cmp_dests).

// keyIs6 reports whether ipvsadm would treat the service as AF_INET6: a
// fwmark service by its -6 flag, any other by its address (an IPv4-mapped
// IPv6 address such as ::ffff:10.0.0.1 is IPv6 for ipvsadm, unlike
// spec.ServiceKey.Is6).
func keyIs6(k spec.ServiceKey) bool {
	if k.IsFWMark() {
		return k.IPv6
	}
	return k.Addr.Is6()
}

// afNum is the address family number ipvsadm compares (AF_INET 2, AF_INET6 10).
func afNum(v6 bool) int {
	if v6 {
		return 10
	}
	return 2
}

// words returns an address as the four host-order 32-bit words of a
// union nf_inet_addr (an IPv4 address fills the first word only).
func words(a netip.Addr) [4]uint32 {
	var w [4]uint32
	if a.Is4() {
		b := a.As4()
		w[0] = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		return w
	}
	if !a.IsValid() {
		return w
	}
	b := a.As16()
	for i := range w {
		w[i] = uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
	}
	return w
}

// wrapDiff is C's "int r = a - b" on two unsigned 32-bit values.
func wrapDiff(a, b uint32) int { return int(int32(a - b)) }

// cmpServices reproduces ipvs_cmp_services, including the wrapped int
// differences (10.0.0.1 sorts after 192.168.0.1).
func cmpServices(a, b *spec.Service) int {
	if r := wrapDiff(a.Key.FWMark, b.Key.FWMark); r != 0 {
		return r
	}
	a6, b6 := keyIs6(a.Key), keyIs6(b.Key)
	if r := afNum(a6) - afNum(b6); r != 0 {
		return r
	}
	if r := int(a.Key.Proto) - int(b.Key.Proto); r != 0 {
		return r
	}
	wa, wb := words(a.Key.Addr), words(b.Key.Addr)
	r := 0
	if a6 {
		for i := 0; r == 0 && i < 4; i++ {
			r = wrapDiff(wa[i], wb[i])
		}
	} else {
		r = wrapDiff(wa[0], wb[0])
	}
	if r != 0 {
		return r
	}
	return int(a.Key.Port) - int(b.Key.Port)
}

// cmpDests reproduces ipvs_cmp_dests: the first destination's family
// decides how many address words are compared; families are not compared.
func cmpDests(a, b *spec.Dest) int {
	wa, wb := words(a.Addr), words(b.Addr)
	r := 0
	if a.Addr.Is6() {
		for i := 0; r == 0 && i < 4; i++ {
			r = wrapDiff(wa[i], wb[i])
		}
	} else {
		r = wrapDiff(wa[0], wb[0])
	}
	if r != 0 {
		return r
	}
	return int(a.Port) - int(b.Port)
}

// mergeSort is a top-down merge sort with glibc msort's split (n/2) and
// tie rule (left first), so that the non-transitive wrapped comparisons
// give the order glibc's qsort gives.
func mergeSort[T any](s []T, cmp func(a, b *T) int) {
	if len(s) < 2 {
		return
	}
	tmp := make([]T, len(s))
	msort(s, tmp, cmp)
}

func msort[T any](s, tmp []T, cmp func(a, b *T) int) {
	n := len(s)
	if n < 2 {
		return
	}
	n1 := n / 2
	msort(s[:n1], tmp[:n1], cmp)
	msort(s[n1:], tmp[n1:], cmp)
	i, j, k := 0, n1, 0
	for i < n1 && j < n {
		if cmp(&s[i], &s[j]) <= 0 {
			tmp[k] = s[i]
			i++
		} else {
			tmp[k] = s[j]
			j++
		}
		k++
	}
	k += copy(tmp[k:], s[i:n1])
	copy(tmp[k:], s[j:])
	copy(s, tmp[:n])
}

// SortServices returns the services in ipvsadm's listing order (a sorted
// copy; the argument is not modified).
func SortServices(services []ServiceView) []ServiceView {
	out := append([]ServiceView(nil), services...)
	mergeSort(out, func(a, b *ServiceView) int { return cmpServices(&a.Service, &b.Service) })
	return out
}

// SortDests returns the destinations in ipvsadm's listing order (a sorted
// copy).
func SortDests(dests []DestView) []DestView {
	out := append([]DestView(nil), dests...)
	mergeSort(out, func(a, b *DestView) int { return cmpDests(&a.Dest, &b.Dest) })
	return out
}

// ---------------------------------------------------------------------------
// Names.

func protoName(p spec.Proto) string {
	switch p {
	case spec.ProtoTCP, spec.ProtoUDP, spec.ProtoSCTP:
		return p.String()
	}
	return "?"
}

func protoOption(p spec.Proto) string {
	switch p {
	case spec.ProtoTCP:
		return "-t"
	case spec.ProtoUDP:
		return "-u"
	case spec.ProtoSCTP:
		return "--sctp-service"
	}
	return "--xxx-service"
}

func padRight(s string, w int) string {
	if len(s) >= w {
		return s
	}
	return s + strings.Repeat(" ", w-len(s))
}

func padLeft(s string, w int) string {
	if len(s) >= w {
		return s
	}
	return strings.Repeat(" ", w-len(s)) + s
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

// listName is the service column of the listings ("TCP  10.0.0.1:80",
// "FWM  7 IPv6").
func listName(s *spec.Service) string {
	k := s.Key
	if k.IsFWMark() {
		n := "FWM  " + u64(uint64(k.FWMark))
		if k.IPv6 {
			n += " IPv6"
		}
		return n
	}
	n := padRight(protoName(k.Proto), 4) + " " + addrPortName(k.Addr, k.Port)
	if !k.Addr.Is6() && len(n) > maxSvcNameWidth {
		n = n[:maxSvcNameWidth]
	}
	return n
}

// ruleName is the service part of a saved rule ("-t 10.0.0.1:80", "-f 7 -6").
func ruleName(s *spec.Service) string {
	k := s.Key
	if k.IsFWMark() {
		n := "-f " + u64(uint64(k.FWMark))
		if k.IPv6 {
			n += " -6"
		}
		return n
	}
	return protoOption(k.Proto) + " " + addrPortName(k.Addr, k.Port)
}

func destName(d *spec.Dest) string {
	n := addrPortName(d.Addr, d.Port)
	if !d.Addr.Is6() && len(n) > maxDstNameWidth {
		n = n[:maxDstNameWidth]
	}
	return n
}

// schedFlagNames is print_sched_flags: the names depend on the scheduler.
func schedFlagNames(s *spec.Service) string {
	var names []string
	switch s.Scheduler {
	case "sh", "mh":
		if s.Flags&spec.SchedFlag1 != 0 {
			names = append(names, s.Scheduler+"-fallback")
		}
		if s.Flags&spec.SchedFlag2 != 0 {
			names = append(names, s.Scheduler+"-port")
		}
	default:
		if s.Flags&spec.SchedFlag1 != 0 {
			names = append(names, "flag-1")
		}
		if s.Flags&spec.SchedFlag2 != 0 {
			names = append(names, "flag-2")
		}
		if s.Flags&spec.SchedFlag3 != 0 {
			names = append(names, "flag-3")
		}
	}
	return strings.Join(names, ",")
}

const schedFlagBits = spec.SchedFlag1 | spec.SchedFlag2 | spec.SchedFlag3

// maskText is the " mask"/" -M" value, or "" when it is the default.
func maskText(s *spec.Service) string {
	if keyIs6(s.Key) {
		if s.Netmask != 128 {
			return strconv.FormatInt(int64(int32(s.Netmask)), 10)
		}
		return ""
	}
	if s.Netmask != 0xffffffff {
		return addrFrom4(s.Netmask).String()
	}
	return ""
}

// fwdName is the Forward column; unknown methods print as glibc prints a
// NULL string.
func fwdName(f spec.Fwd) string {
	switch f {
	case spec.FwdMasq, spec.FwdLocal, spec.FwdTunnel, spec.FwdRoute, spec.FwdFullNAT:
		return f.String()
	}
	return "(null)"
}

// fwdSwitch is the forwarding option of a saved rule.
func fwdSwitch(f spec.Fwd) string {
	switch f {
	case spec.FwdMasq:
		return "-m"
	case spec.FwdTunnel:
		return "-i"
	case spec.FwdLocal, spec.FwdRoute:
		return "-g"
	case spec.FwdFullNAT:
		return "-b"
	}
	return "(null)"
}

var (
	tunFlagShort = [...]string{"-c", "+c", "r+c"}
	tunFlagOpt   = [...]string{"--tun-nocsum", "--tun-csum", "--tun-remcsum"}
)

func tunFlag(tab [3]string, c spec.TunCsum) string {
	if int(c) < len(tab) {
		return tab[c]
	}
	return "(null)"
}

// tunInfo is the TunnelInfo column (fwd_tun_info), "n/a" if none.
func tunInfo(d *spec.Dest) string {
	if d.Fwd != spec.FwdTunnel {
		return "n/a"
	}
	switch d.TunType {
	case spec.TunIPIP:
		return "ipip"
	case spec.TunGUE:
		return "gue:" + u64(uint64(d.TunPort)) + ":" + tunFlag(tunFlagShort, d.TunCsum)
	case spec.TunGRE:
		return "gre:" + tunFlag(tunFlagShort, d.TunCsum)
	}
	return "n/a"
}

// largenum is print_largenum.
func largenum(b *strings.Builder, v uint64, exact bool) {
	if exact {
		s := u64(v)
		w := 9
		if len(s) > 8 {
			w = len(s) + 1
		}
		b.WriteString(padLeft(s, w))
		return
	}
	switch {
	case v < 100000000:
		b.WriteString(padLeft(u64(v), 9))
	case v < 1000000000:
		b.WriteString(padLeft(u64(v/1000), 8) + "K")
	case v < 100000000000:
		b.WriteString(padLeft(u64(v/1000000), 8) + "M")
	case v < 100000000000000:
		b.WriteString(padLeft(u64(v/1000000000), 8) + "G")
	default:
		b.WriteString(padLeft(u64(v/1000000000000), 8) + "T")
	}
}

// ---------------------------------------------------------------------------
// Listings.

const destTitle = "  -> RemoteAddress:Port\n"

// writeTitle is print_title for the listing (non-rule) formats, with
// ipvsadm's precedence stats > rate > thresholds > persistent-conn >
// tun-info > default.
func writeTitle(b *strings.Builder, o ListOptions) {
	switch {
	case o.Stats:
		b.WriteString(padRight("Prot LocalAddress:Port", 33) + " " + padLeft("Conns", 8) + " " +
			padLeft("InPkts", 8) + " " + padLeft("OutPkts", 8) + " " + padLeft("InBytes", 8) + " " +
			padLeft("OutBytes", 8) + "\n" + destTitle)
	case o.Rate:
		b.WriteString(padRight("Prot LocalAddress:Port", 33) + " " + padLeft("CPS", 8) + " " +
			padLeft("InPPS", 8) + " " + padLeft("OutPPS", 8) + " " + padLeft("InBPS", 8) + " " +
			padLeft("OutBPS", 8) + "\n" + destTitle)
	case o.Thresholds:
		b.WriteString(padRight("Prot LocalAddress:Port", 33) + " " + padRight("Uthreshold", 10) + " " +
			padRight("Lthreshold", 10) + " " + padRight("ActiveConn", 10) + " " + padRight("InActConn", 10) + "\n" + destTitle)
	case o.PersistentConn:
		b.WriteString(padRight("Prot LocalAddress:Port", 33) + " " + padRight("Weight", 9) + " " +
			padRight("PersistConn", 11) + " " + padRight("ActiveConn", 10) + " " + padRight("InActConn", 10) + "\n" + destTitle)
	case o.TunInfo:
		b.WriteString("Prot LocalAddress:Port Scheduler Flags\n" +
			"  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
	default:
		b.WriteString("Prot LocalAddress:Port Scheduler Flags\n" +
			"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	}
}

// writeEntry is print_service_entry for the listing formats.
func writeEntry(b *strings.Builder, sv *ServiceView, o ListOptions) {
	s := &sv.Service
	name := listName(s)
	switch {
	case o.Stats:
		b.WriteString(padRight(name, 33))
		st := &sv.Stats
		for _, v := range [...]uint64{st.Conns, st.InPkts, st.OutPkts, st.InBytes, st.OutBytes} {
			largenum(b, v, o.Exact)
		}
	case o.Rate:
		b.WriteString(padRight(name, 33))
		r := &sv.Rate
		for _, v := range [...]uint64{r.CPS, r.InPPS, r.OutPPS, r.InBPS, r.OutBPS} {
			largenum(b, v, o.Exact)
		}
	default:
		b.WriteString(name + " " + s.Scheduler)
		if s.Flags&schedFlagBits != 0 {
			b.WriteString(" (" + schedFlagNames(s) + ")")
		}
		if s.Persistent {
			b.WriteString(" persistent " + u64(uint64(s.Timeout)))
			if m := maskText(s); m != "" {
				b.WriteString(" mask " + m)
			}
			if s.PE != "" {
				b.WriteString(" pe " + s.PE)
			}
		}
		if s.OPS {
			b.WriteString(" ops")
		}
	}
	b.WriteByte('\n')

	dests := sv.Dests
	if !o.NoSort {
		dests = SortDests(dests)
	}
	for i := range dests {
		dv := &dests[i]
		d := &dv.Dest
		dn := destName(d)
		b.WriteString("  -> ")
		switch {
		case o.Stats:
			b.WriteString(padRight(dn, 28))
			st := &dv.Stats
			for _, v := range [...]uint64{st.Conns, st.InPkts, st.OutPkts, st.InBytes, st.OutBytes} {
				largenum(b, v, o.Exact)
			}
		case o.Rate:
			b.WriteString(padRight(dn, 28) + " " + padLeft(u64(dv.Rate.CPS), 8) + " " +
				padLeft(u64(dv.Rate.InPPS), 8) + " " + padLeft(u64(dv.Rate.OutPPS), 8))
			largenum(b, dv.Rate.InBPS, o.Exact)
			largenum(b, dv.Rate.OutBPS, o.Exact)
		case o.Thresholds:
			b.WriteString(padRight(dn, 28) + " " + padRight(u64(uint64(d.UThreshold)), 10) + " " +
				padRight(u64(uint64(d.LThreshold)), 10) + " " + padRight(u64(uint64(dv.ActiveConns)), 10) + " " +
				padRight(u64(uint64(dv.InactConns)), 10))
		case o.PersistentConn:
			b.WriteString(padRight(dn, 28) + " " + padRight(u64(uint64(d.Weight)), 9) + " " +
				padRight(u64(uint64(dv.PersistConns)), 11) + " " + padRight(u64(uint64(dv.ActiveConns)), 10) + " " +
				padRight(u64(uint64(dv.InactConns)), 10))
		case o.TunInfo:
			b.WriteString(padRight(dn, 28) + " " + padRight(fwdName(d.Fwd), 7) + " " +
				padRight(tunInfo(d), 13) + " " + padRight(weightText(d.Weight), 6) + " " +
				padRight(u64(uint64(dv.ActiveConns)), 10) + " " + padRight(u64(uint64(dv.InactConns)), 10))
		default:
			b.WriteString(padRight(dn, 28) + " " + padRight(fwdName(d.Fwd), 7) + " " +
				padRight(weightText(d.Weight), 6) + " " + padRight(u64(uint64(dv.ActiveConns)), 10) + " " +
				padRight(u64(uint64(dv.InactConns)), 10))
		}
		b.WriteByte('\n')
	}
}

// weightText prints the weight with %d (the kernel's weight is an int).
func weightText(w uint32) string { return strconv.FormatInt(int64(int32(w)), 10) }

// FormatList writes what "ipvsadm -L" prints for the whole table: the
// version line with the connection-table size, the title of the chosen
// format and every service with its destinations. Services and
// destinations arrive in kernel order and are sorted as libipvs sorts
// them unless opts.NoSort. Addresses and ports are always numeric (uvs
// does no DNS or service-name lookups), so the output equals -Ln.
// opts.Connections, Timeout and Daemon select other listings
// (FormatConns, FormatTimeout, FormatDaemon) and are ignored here.
func FormatList(w io.Writer, services []ServiceView, opts ListOptions, connTabSize int) error {
	var b strings.Builder
	b.WriteString("IP Virtual Server version " + IPVSVersion + " (size=" + strconv.Itoa(connTabSize) + ")\n")
	writeTitle(&b, opts)
	if !opts.NoSort {
		services = SortServices(services)
	}
	for i := range services {
		writeEntry(&b, &services[i], opts)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// FormatService writes what "ipvsadm -L -t vip:port" prints: the title and
// the one service (no version line).
func FormatService(w io.Writer, svc ServiceView, opts ListOptions) error {
	var b strings.Builder
	writeTitle(&b, opts)
	writeEntry(&b, &svc, opts)
	_, err := io.WriteString(w, b.String())
	return err
}

// FormatSave writes the table in the -S/-R rules format, exactly as
// "ipvsadm -S -n" does: services sorted, each "-A" line followed by its
// "-a" lines (sorted); thresholds are not saved, Local destinations are
// saved as -g and FULLNAT ones as -b. FULLNAT local addresses, which
// ipvsadm has no notion of, follow as "-P <service> -z <addr>" lines.
// Output is numeric whether or not numeric is set (no name lookups).
func FormatSave(w io.Writer, services []ServiceView, numeric bool) error {
	_ = numeric
	var b strings.Builder
	for _, sv := range SortServices(services) {
		s := &sv.Service
		name := ruleName(s)
		b.WriteString("-A " + name + " -s " + s.Scheduler)
		if s.Persistent {
			b.WriteString(" -p " + u64(uint64(s.Timeout)))
			if m := maskText(s); m != "" {
				b.WriteString(" -M " + m)
			}
		}
		if s.PE != "" {
			b.WriteString(" --pe " + s.PE)
		}
		if s.OPS {
			b.WriteString(" -o")
		}
		if s.Flags&schedFlagBits != 0 {
			b.WriteString(" -b " + schedFlagNames(s))
		}
		b.WriteByte('\n')
		for _, dv := range SortDests(sv.Dests) {
			d := &dv.Dest
			b.WriteString("-a " + name + " -r " + addrPortName(d.Addr, d.Port) + " " + fwdSwitch(d.Fwd) +
				" -w " + weightText(d.Weight))
			if d.Fwd == spec.FwdTunnel {
				switch d.TunType {
				case spec.TunIPIP:
					b.WriteString(" --tun-type ipip")
				case spec.TunGUE:
					b.WriteString(" --tun-type gue --tun-port " + u64(uint64(d.TunPort)) + " " + tunFlag(tunFlagOpt, d.TunCsum))
				case spec.TunGRE:
					b.WriteString(" --tun-type gre " + tunFlag(tunFlagOpt, d.TunCsum))
				}
			}
			b.WriteByte('\n')
		}
		for _, la := range s.LocalAddrs {
			b.WriteString("-P " + name + " -z " + ntop(la) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// FormatConns writes the -Lnc listing. With persistentConn (-Lnc
// --persistent-conn) the header gains the persistence-engine columns and
// entries with PE data print them.
func FormatConns(w io.Writer, conns []ConnView, persistentConn bool) error {
	var b strings.Builder
	b.WriteString("IPVS connection entries\n")
	if persistentConn {
		b.WriteString("pro expire " + padRight("state", 11) + " " + padRight("source", 18) + " " +
			padRight("virtual", 18) + " " + padRight("destination", 18) + " " + padRight("pe name", 16) + " pe_data\n")
	} else {
		b.WriteString("pro expire " + padRight("state", 11) + " " + padRight("source", 18) + " " +
			padRight("virtual", 18) + " destination\n")
	}
	for i := range conns {
		c := &conns[i]
		exp := pad2(c.Expire/60) + ":" + pad2(c.Expire%60)
		cn := addrPortName(c.Client.Addr(), c.Client.Port())
		vn := addrPortName(c.Virtual.Addr(), c.Virtual.Port())
		dn := addrPortName(c.Dest.Addr(), c.Dest.Port())
		b.WriteString(padRight(connProto(c.Proto), 3) + " " + padRight(exp, 6) + " " + padRight(c.State, 11) + " " +
			padRight(cn, 18) + " " + padRight(vn, 18) + " ")
		if persistentConn && c.PEName != "" {
			b.WriteString(padRight(dn, 16) + " " + padRight(c.PEName, 18) + " " + c.PEData + "\n")
		} else {
			b.WriteString(dn + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// connProto is the protocol name /proc/net/ip_vs_conn prints.
func connProto(p spec.Proto) string {
	switch p {
	case spec.ProtoTCP, spec.ProtoUDP, spec.ProtoSCTP, spec.ProtoIP:
		return p.String()
	case 1:
		return "ICMP"
	}
	return "IP_" + strconv.Itoa(int(p))
}

func pad2(v uint32) string {
	s := u64(uint64(v))
	if len(s) < 2 {
		return "0" + s
	}
	return s
}

// FormatTimeout writes the "-L --timeout" line.
func FormatTimeout(w io.Writer, tcp, tcpfin, udp uint32) error {
	_, err := io.WriteString(w, "Timeout (tcp tcpfin udp): "+weightText(tcp)+" "+weightText(tcpfin)+" "+weightText(udp)+"\n")
	return err
}

// FormatDaemon writes the "-L --daemon" lines, one per running daemon
// (entries whose State is neither "master" nor "backup" are skipped).
func FormatDaemon(w io.Writer, daemons []DaemonConfig) error {
	var b strings.Builder
	for _, d := range daemons {
		if d.State != "master" && d.State != "backup" {
			continue
		}
		b.WriteString(d.State + " sync daemon (mcast=" + d.McastIfn + ", syncid=" + u64(uint64(d.SyncID)))
		if d.SyncMaxLen != 0 {
			b.WriteString(", maxlen=" + u64(uint64(d.SyncMaxLen)))
		}
		if d.McastGroup.IsValid() {
			b.WriteString(", group=" + ntop(d.McastGroup))
		}
		if d.McastPort != 0 {
			b.WriteString(", port=" + u64(uint64(d.McastPort)))
		}
		if d.McastTTL != 0 {
			b.WriteString(", ttl=" + u64(uint64(d.McastTTL)))
		}
		b.WriteString(")\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
