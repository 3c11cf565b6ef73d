package ipvsadm

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/uvs-lb/uvs/spec"
)

// DefaultProg is the program name Parse and Usage use in messages.
const DefaultProg = "uvsadm"

// Field limits ipvsadm applies with strncpy.
const (
	schedNameMax = 15 // IP_VS_SCHEDNAME_MAXLEN - 1
	peNameMax    = 15 // IP_VS_PENAME_MAXLEN - 1
	ifNameMax    = 15 // IP_VS_IFNAME_MAXLEN - 1
	schedFlagMax = 127
)

// Parse parses an ipvsadm 1.31 command line (args exclude argv[0]) into a
// Command, applying ipvsadm's defaults, legality matrix and semantic checks.
// Errors are *Error values carrying ipvsadm's message and exit code.
//
// As in ipvsadm, no arguments means "-L" (Kind CmdList); -h and -v return
// CmdHelp and CmdVersion (the caller prints Usage or Version). Host names
// are not resolved: addresses must be numeric (inet_aton or IPv6 literal
// syntax), and ports may be numbers or one of the builtin service names
// ftp, ssh, smtp, domain, http, https.
//
// FULLNAT (DPVS spelling): -b/--fullnat selects the FULLNAT forwarding
// method on -a/-e/-d (elsewhere -b is --sched-flags), and -P/--add-laddr,
// -Q/--del-laddr, -G/--get-laddr manage a service's local addresses, given
// with -z/--laddr. --list-checkers (uvs) lists the health checkers of
// uvsd --keepalived; --counters [--json] (uvs) prints uvsd's counters.
func Parse(args []string) (Command, error) { return ParseAs(DefaultProg, args) }

// ParseAs is Parse with the program name used in "Try `prog -h' ..."
// messages (ipvsadm prints argv[0] there).
func ParseAs(prog string, args []string) (Command, error) {
	if len(args) == 0 {
		return Command{Kind: CmdList}, nil
	}
	p := parser{
		prog:    prog,
		sc:      scanner{args: args},
		netmask: 0xffffffff,
		weight:  1,
		fwd:     spec.FwdRoute,
	}
	cmd, err := p.parse()
	if err != nil {
		return Command{}, err
	}
	return cmd, nil
}

// scanner walks argv the way popt does: options are returned in order,
// short options may be bundled, non-options are collected as leftovers
// wherever they appear, and "--" ends option processing.
type scanner struct {
	args      []string
	i         int
	bundle    string // unread characters of the current short-option token
	bundleTok string // that token as typed
	noMore    bool
	rest      []string
}

// scanned is one option returned by the scanner.
type scanned struct {
	def    optDef
	tok    string // the whole argv element that introduced the option
	name   string // "-w" or "--weight"
	val    string
	hasVal bool
}

// text is the option and its value as typed, for error tokens.
func (s scanned) text() string {
	if s.hasVal {
		return s.name + " " + s.val
	}
	return s.name
}

func poptErr(tok, what string) *Error {
	return &Error{Code: ExitPopt, Msg: tok + ": " + what, Token: tok}
}

// next returns the next option; done is true at the end of argv.
func (s *scanner) next(cmd CmdKind) (o scanned, done bool, err *Error) {
	for {
		if s.bundle != "" {
			c := s.bundle[0]
			s.bundle = s.bundle[1:]
			d, ok := lookupShort(c, cmd)
			if !ok {
				return o, false, poptErr(s.bundleTok, "unknown option")
			}
			o = scanned{def: d, tok: s.bundleTok, name: "-" + string(c)}
			if d.arg == argNone {
				return o, false, nil
			}
			if s.bundle != "" {
				o.val, o.hasVal = s.bundle, true
				s.bundle = ""
				return o, false, nil
			}
			if s.i < len(s.args) && (d.arg == argRequired || !strings.HasPrefix(s.args[s.i], "-")) {
				o.val, o.hasVal = s.args[s.i], true
				s.i++
				return o, false, nil
			}
			if d.arg == argRequired {
				return o, false, poptErr(s.bundleTok, "missing argument")
			}
			return o, false, nil
		}
		if s.i >= len(s.args) {
			return o, true, nil
		}
		a := s.args[s.i]
		s.i++
		if s.noMore || len(a) < 2 || a[0] != '-' {
			s.rest = append(s.rest, a)
			continue
		}
		if a == "--" {
			s.noMore = true
			continue
		}
		if !strings.HasPrefix(a, "--") {
			s.bundle, s.bundleTok = a[1:], a
			continue
		}
		name, val, eq := strings.Cut(a[2:], "=")
		d, ok := lookupLong(name)
		if !ok {
			return o, false, poptErr(a, "unknown option")
		}
		o = scanned{def: d, tok: a, name: "--" + name}
		switch {
		case d.arg == argNone:
			if eq {
				return o, false, poptErr(a, "option does not take an argument")
			}
		case eq:
			o.val, o.hasVal = val, true
		case s.i < len(s.args) && (d.arg == argRequired || !strings.HasPrefix(s.args[s.i], "-")):
			o.val, o.hasVal = s.args[s.i], true
			s.i++
		case d.arg == argRequired:
			return o, false, poptErr(a, "missing argument")
		}
		return o, false, nil
	}
}

// parser holds the state ipvsadm keeps in struct ipvs_command_entry while
// it walks the options.
type parser struct {
	prog string
	sc   scanner
	kind CmdKind

	set [numOpts]bool
	tok [numOpts]string // each option as typed, for error tokens

	// service
	svcAF      int // 0 unknown, 4, 6
	proto      spec.Proto
	addr       netip.Addr
	port       uint16
	fwmark     uint32
	sched      string
	persistent bool
	timeout    uint32
	netmask    uint32
	pe         string
	ops        bool
	schedFlags string
	flags      spec.SchedFlags

	// destination
	destAF   int
	daddr    netip.Addr
	dport    uint16
	fwd      spec.Fwd
	weight   uint32
	uthresh  uint32
	lthresh  uint32
	tunType  spec.TunType
	tunPort  uint16
	tunFlags spec.TunCsum

	laddr  netip.Addr
	daemon DaemonConfig
	tcp    uint32
	tcpfin uint32
	udp    uint32
}

func (p *parser) tryHelp() *Error {
	return &Error{Code: ExitPopt, Msg: fmt.Sprintf("Try `%s -h' or '%s --help' for more information.", p.prog, p.prog)}
}

func (p *parser) setOpt(o optIdx, s scanned) *Error {
	if p.set[o] {
		return usageErr(s.text(), "multiple '%s' options specified", optNames[o])
	}
	p.set[o] = true
	p.tok[o] = s.text()
	return nil
}

func (p *parser) parse() (Command, error) {
	first, done, perr := p.sc.next(CmdNone)
	if perr != nil || done {
		return Command{}, p.tryHelp()
	}
	switch first.def.id {
	case idAdd:
		p.kind = CmdAddService
	case idEdit:
		p.kind = CmdEditService
	case idDel:
		p.kind = CmdDelService
	case idAddServer:
		p.kind = CmdAddServer
	case idEditServer:
		p.kind = CmdEditServer
	case idDelServer:
		p.kind = CmdDelServer
	case idClear:
		p.kind = CmdFlush
	case idList:
		p.kind = CmdList
	case idZero:
		p.kind = CmdZero
	case idSet:
		p.kind = CmdSetTimeout
	case idRestore:
		p.kind = CmdRestore
	case idSave:
		p.kind = CmdSave
	case idAddLaddr:
		p.kind = CmdAddLaddr
	case idDelLaddr:
		p.kind = CmdDelLaddr
	case idGetLaddr:
		p.kind = CmdGetLaddr
	case idListCheckers:
		p.kind = CmdListCheckers
	case idCounters:
		p.kind = CmdCounters
	case idStartDaemon, idStopDaemon:
		p.kind = CmdStartDaemon
		if first.def.id == idStopDaemon {
			p.kind = CmdStopDaemon
		}
		switch first.val {
		case "master", "backup":
			p.daemon.State = first.val
		default:
			if p.kind == CmdStartDaemon {
				return Command{}, usageErr(first.text(), "illegal start-daemon parameter specified")
			}
			return Command{}, usageErr(first.text(), "illegal start_daemon specified")
		}
	case idHelp:
		return Command{Kind: CmdHelp}, nil
	case idVersion:
		return Command{Kind: CmdVersion}, nil
	default:
		return Command{}, p.tryHelp()
	}

	for {
		o, done, perr := p.sc.next(p.kind)
		if perr != nil {
			return Command{}, perr
		}
		if done {
			break
		}
		if err := p.option(o); err != nil {
			return Command{}, err
		}
	}
	if err := p.finish(); err != nil {
		return Command{}, err
	}
	return p.command(), nil
}

// option applies one option (the body of parse_options' loop).
func (p *parser) option(o scanned) *Error {
	v := o.val
	switch o.def.id {
	case idTCP, idUDP, idSCTP:
		if err := p.setOpt(optService, o); err != nil {
			return err
		}
		p.proto = map[optID]spec.Proto{idTCP: spec.ProtoTCP, idUDP: spec.ProtoUDP, idSCTP: spec.ProtoSCTP}[o.def.id]
		r, ok := parseService(v, p.proto)
		if !ok {
			return usageErr(o.text(), "illegal virtual server address[:port] specified")
		}
		p.addr = r.addr
		p.svcAF = 4
		if r.addr.Is6() {
			p.svcAF = 6
			p.netmask = 128
		}
		if r.hasPort {
			p.port = r.port
		}
	case idFWMark:
		if err := p.setOpt(optService, o); err != nil {
			return err
		}
		p.svcAF = 4
		p.proto = spec.ProtoTCP
		n, ok := strtol10(v)
		if !ok || n <= 0 || n > 0xffffffff {
			return usageErr(o.text(), "invalid fwmark value `%s' specified", v)
		}
		p.fwmark = uint32(n)
	case idScheduler:
		if err := p.setOpt(optScheduler, o); err != nil {
			return err
		}
		p.sched = truncate(v, schedNameMax)
	case idPersistent:
		if err := p.setOpt(optPersistent, o); err != nil {
			return err
		}
		p.persistent = true
		p.timeout = spec.DefaultPersistentTimeout
		if o.hasVal {
			t, err := parseTimeout(o, v, 1)
			if err != nil {
				return err
			}
			p.timeout = t
		}
	case idNetmask:
		if err := p.setOpt(optNetmask, o); err != nil {
			return err
		}
		if p.svcAF != 6 {
			m, ok := inetAton(v)
			if !ok {
				return usageErr(o.text(), "illegal virtual server persistent mask specified")
			}
			p.netmask = m
		} else {
			n := atoi(v)
			if n < 1 || n > 128 {
				return usageErr(o.text(), "illegal ipv6 netmask specified")
			}
			p.netmask = uint32(n)
		}
	case idRealServer:
		if err := p.setOpt(optServer, o); err != nil {
			return err
		}
		r, ok := parseService(v, p.proto)
		if !ok {
			return usageErr(o.text(), "illegal real server address[:port] specified")
		}
		p.daddr = r.addr
		p.destAF = 4
		if r.addr.Is6() {
			p.destAF = 6
		}
		p.dport = p.port
		if r.hasPort {
			p.dport = r.port
		}
	case idIPIP, idGatewaying, idMasq, idFullNAT:
		if err := p.setOpt(optForward, o); err != nil {
			return err
		}
		p.fwd = map[optID]spec.Fwd{idIPIP: spec.FwdTunnel, idGatewaying: spec.FwdRoute,
			idMasq: spec.FwdMasq, idFullNAT: spec.FwdFullNAT}[o.def.id]
	case idWeight:
		if err := p.setOpt(optWeight, o); err != nil {
			return err
		}
		n, ok := stringToNumber(v, 0, 65535)
		if !ok {
			return usageErr(o.text(), "illegal weight specified")
		}
		p.weight = uint32(n)
	case idUThreshold:
		if err := p.setOpt(optUThreshold, o); err != nil {
			return err
		}
		n, ok := stringToNumber(v, 0, 1<<31-1)
		if !ok {
			return usageErr(o.text(), "illegal u_threshold specified")
		}
		p.uthresh = uint32(n)
	case idLThreshold:
		if err := p.setOpt(optLThreshold, o); err != nil {
			return err
		}
		n, ok := stringToNumber(v, 0, 1<<31-1)
		if !ok {
			return usageErr(o.text(), "illegal l_threshold specified")
		}
		p.lthresh = uint32(n)
	case idConnection:
		return p.setOpt(optConnection, o)
	case idNumeric:
		return p.setOpt(optNumeric, o)
	case idMcastInterface:
		if err := p.setOpt(optMcast, o); err != nil {
			return err
		}
		p.daemon.McastIfn = truncate(v, ifNameMax)
	case idSyncID:
		if err := p.setOpt(optSyncID, o); err != nil {
			return err
		}
		n, ok := stringToNumber(v, 0, 255)
		if !ok {
			return usageErr(o.text(), "illegal syncid specified")
		}
		p.daemon.SyncID = uint8(n)
	case idTimeout:
		return p.setOpt(optTimeout, o)
	case idDaemon:
		return p.setOpt(optDaemon, o)
	case idStats:
		return p.setOpt(optStats, o)
	case idRate:
		return p.setOpt(optRate, o)
	case idThresholds:
		return p.setOpt(optThresholds, o)
	case idPersistentConn:
		return p.setOpt(optPersistentConn, o)
	case idNoSort:
		return p.setOpt(optNoSort, o)
	case idSort:
		// Sorting is the default; --sort is a no-op kept for compatibility.
	case idExact:
		return p.setOpt(optExact, o)
	case idIPv6:
		if p.fwmark == 0 {
			return usageErr(o.text(), "-6 used before -f\n")
		}
		p.svcAF = 6
		p.netmask = 128
	case idOps:
		if err := p.setOpt(optOnePacket, o); err != nil {
			return err
		}
		p.ops = true
	case idPE:
		if err := p.setOpt(optPE, o); err != nil {
			return err
		}
		p.pe = truncate(v, peNameMax)
	case idSchedFlags:
		if err := p.setOpt(optSchedFlags, o); err != nil {
			return err
		}
		p.schedFlags = truncate(v, schedFlagMax)
	case idMcastGroup:
		if err := p.setOpt(optMcastGroup, o); err != nil {
			return err
		}
		if strings.Contains(v, ":") {
			a, ok := inetPton6(v)
			if !ok || !a.IsMulticast() {
				return usageErr(o.text(), "invalid IPv6 mcast-group `%s'", v)
			}
			p.daemon.McastGroup = a
		} else {
			a, err := netip.ParseAddr(v)
			if err != nil || !a.Is4() || !a.IsMulticast() {
				return usageErr(o.text(), "invalid IPv4 mcast-group `%s'", v)
			}
			p.daemon.McastGroup = a
		}
	case idMcastPort:
		if err := p.setOpt(optMcastPort, o); err != nil {
			return err
		}
		n, ok := stringToNumber(v, 1, 65535)
		if !ok {
			return usageErr(o.text(), "illegal mcast-port specified")
		}
		p.daemon.McastPort = uint16(n)
	case idMcastTTL:
		if err := p.setOpt(optMcastTTL, o); err != nil {
			return err
		}
		n, ok := stringToNumber(v, 1, 255)
		if !ok {
			return usageErr(o.text(), "illegal mcast-ttl specified")
		}
		p.daemon.McastTTL = uint8(n)
	case idSyncMaxLen:
		if err := p.setOpt(optSyncMaxLen, o); err != nil {
			return err
		}
		n, ok := stringToNumber(v, 1, 65535-20-8)
		if !ok {
			return usageErr(o.text(), "illegal sync-maxlen specified")
		}
		p.daemon.SyncMaxLen = uint16(n)
	case idTunInfo:
		return p.setOpt(optTunInfo, o)
	case idJSON:
		return p.setOpt(optJSON, o)
	case idTunType:
		if err := p.setOpt(optTunType, o); err != nil {
			return err
		}
		switch v {
		case "ipip":
			p.tunType = spec.TunIPIP
		case "gue":
			p.tunType = spec.TunGUE
		case "gre":
			p.tunType = spec.TunGRE
		default:
			return usageErr(o.text(), "illegal tunnel type specified")
		}
	case idTunPort:
		if err := p.setOpt(optTunPort, o); err != nil {
			return err
		}
		n, ok := stringToNumber(v, 1, 65535)
		if !ok {
			return usageErr(o.text(), "illegal tunnel port specified")
		}
		p.tunPort = uint16(n)
	case idTunNoCsum:
		return p.setOpt(optTunNoCsum, o)
	case idTunCsum:
		if err := p.setOpt(optTunCsum, o); err != nil {
			return err
		}
		p.tunFlags |= spec.TunCsumOn
	case idTunRemCsum:
		if err := p.setOpt(optTunRemCsum, o); err != nil {
			return err
		}
		p.tunFlags |= spec.TunRemCsum
	case idLaddr:
		if err := p.setOpt(optLaddr, o); err != nil {
			return err
		}
		a, ok := parseHost(v)
		if !ok {
			return usageErr(o.text(), "illegal local address specified")
		}
		p.laddr = a
	default:
		// A command after the first option: ipvsadm's option loop has
		// no case for it.
		return usageErr(o.tok, "invalid option `%s'", o.tok)
	}
	return nil
}

// parseHost parses a bare address (inet_aton syntax, an IPv6 literal, or
// an IPv6 literal in brackets) for -z.
func parseHost(s string) (netip.Addr, bool) {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return inetPton6(s[1 : len(s)-1])
	}
	if a, ok := inetPton6(s); ok {
		return a, true
	}
	if allDigits(s) {
		return netip.Addr{}, false
	}
	v, ok := inetAton(s)
	if !ok {
		return netip.Addr{}, false
	}
	return addrFrom4(v), true
}

func parseTimeout(o scanned, v string, lo int64) (uint32, *Error) {
	n, ok := stringToNumber(v, lo, spec.MaxTimeout)
	if !ok {
		return 0, usageErr(o.text(), "invalid timeout value `%s' specified", v)
	}
	return uint32(n), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// parseSchedFlags is ipvsadm's parse_sched_flags; sched "" means wlc.
func parseSchedFlags(sched, arg, tok string) (spec.SchedFlags, *Error) {
	if sched == "" {
		sched = spec.DefaultScheduler
	}
	var flags spec.SchedFlags
	seen := false
	for _, f := range strings.Split(arg, ",") {
		if f == "" {
			continue // strtok skips empty fields
		}
		seen = true
		need := ""
		switch f {
		case "flag-1":
			flags |= spec.SchedFlag1
		case "flag-2":
			flags |= spec.SchedFlag2
		case "flag-3":
			flags |= spec.SchedFlag3
		case "sh-fallback", "mh-fallback":
			flags |= spec.SchedFlag1
			need = f[:2]
		case "sh-port", "mh-port":
			flags |= spec.SchedFlag2
			need = f[:2]
		default:
			return 0, usageErr(tok, "invalid scheduler flag `%s'", f)
		}
		if need != "" && sched != need {
			return 0, usageErr(tok, "incompatible scheduler flag `%s'", f)
		}
	}
	if !seen {
		// ipvsadm dereferences a NULL token here; report it instead.
		return 0, usageErr(tok, "invalid scheduler flag `%s'", arg)
	}
	return flags, nil
}

// finish runs the checks ipvsadm does after the option loop, in its order.
func (p *parser) finish() *Error {
	rest := p.sc.rest
	if p.kind == CmdSetTimeout {
		if len(rest) < 3 {
			return usageErr("", "--set option requires 3 timeout values")
		}
		vals := [3]*uint32{&p.tcp, &p.tcpfin, &p.udp}
		for i, v := range rest[:3] {
			t, err := parseTimeout(scanned{name: "--set", val: v, hasVal: true}, v, 0)
			if err != nil {
				err.Token = v
				return err
			}
			*vals[i] = t
		}
		rest = rest[3:]
	}
	if len(rest) > 0 {
		return usageErr(rest[0], "unexpected argument %s", rest[0])
	}
	if p.schedFlags != "" {
		f, err := parseSchedFlags(p.sched, p.schedFlags, p.tok[optSchedFlags])
		if err != nil {
			return err
		}
		p.flags = f
	}
	if err := p.genericOptCheck(); err != nil {
		return err
	}
	switch p.kind {
	case CmdAddService, CmdEditService:
		if p.fwmark == 0 && p.port == 0 && !p.persistent {
			return usageErr(p.tok[optService], "Zero port specified for non-persistent service")
		}
		if p.ops && p.fwmark == 0 && p.proto != spec.ProtoUDP {
			return usageErr(p.tok[optOnePacket], "One-Packet Scheduling is only for UDP virtual services")
		}
		if p.sched == "" {
			p.sched = spec.DefaultScheduler
		}
	case CmdStartDaemon:
		if p.daemon.McastIfn == "" {
			p.daemon.McastIfn = "eth0"
		}
	case CmdAddServer, CmdEditServer:
		if p.fwmark == 0 && (p.fwd == spec.FwdTunnel || p.fwd == spec.FwdRoute) {
			p.dport = p.port
		}
		// ipvsadm allows a real server of the other family only for
		// tunnelling; DPVS's ipvsadm also for FULLNAT (-b), whose
		// connections translate between IPv4 and IPv6 (NAT64): its
		// local addresses are then of the real server's family
		// (control.State checks the pool).
		if p.destAF != p.svcAF && p.fwd != spec.FwdTunnel && p.fwd != spec.FwdFullNAT {
			return usageErr(p.tok[optServer], "Different address family is allowed only for tunneling servers")
		}
		tunOpts := []optIdx{optTunType, optTunPort, optTunNoCsum, optTunCsum, optTunRemCsum}
		for _, o := range tunOpts {
			if p.set[o] && p.fwd != spec.FwdTunnel {
				return usageErr(p.tok[o], "Tunnel options conflict with forward method")
			}
		}
		if err := p.tunnelOptCheck(); err != nil {
			return err
		}
	case CmdList:
		s := p.set
		if ((s[optConnection] || s[optTimeout] || s[optDaemon]) && (s[optStats] || s[optRate] || s[optThresholds])) ||
			((s[optTimeout] || s[optDaemon]) && s[optPersistentConn]) {
			return usageErr("", "options conflicts in the list command")
		}
	}
	return nil
}

// genericOptCheck is ipvsadm's generic_opt_check over the legality matrix.
func (p *parser) genericOptCheck() *Error {
	r, ok := legality(p.kind)
	if !ok {
		return nil
	}
	count := 0
	last := optIdx(0)
	for j := optIdx(0); j < numOpts; j++ {
		if !p.set[j] {
			if r[j] == '+' {
				return usageErr("", "You need to supply the '%s' option for the '%s' command", optNames[j], cmdName(p.kind))
			}
			continue
		}
		switch r[j] {
		case 'x':
			return usageErr(p.tok[j], "Illegal '%s' option with the '%s' command", optNames[j], cmdName(p.kind))
		case '1':
			count++
			if count == 1 {
				last = j
				continue
			}
			return usageErr(p.tok[j], "The option '%s' conflicts with the '%s' option in the '%s' command",
				optNames[j], optNames[last], cmdName(p.kind))
		}
	}
	return nil
}

// tunnelOptCheck is ipvsadm's tunnel_opt_check (tunnel_types_v_options).
func (p *parser) tunnelOptCheck() *Error {
	opts := [4]optIdx{optTunPort, optTunNoCsum, optTunCsum, optTunRemCsum}
	table := map[spec.TunType][4]byte{
		spec.TunIPIP: {'x', 'x', 'x', 'x'},
		spec.TunGUE:  {'+', '1', '1', '1'},
		spec.TunGRE:  {'x', '1', '1', 'x'},
	}
	r := table[p.tunType]
	count := 0
	last := optIdx(0)
	for j, k := range opts {
		if !p.set[k] {
			if r[j] == '+' {
				return usageErr("", "You need to supply the '%s' option for the '%s' tunnel type", optNames[k], p.tunType)
			}
			continue
		}
		switch r[j] {
		case 'x':
			return usageErr(p.tok[k], "Illegal '%s' option with the '%s' tunnel type", optNames[k], p.tunType)
		case '1':
			count++
			if count == 1 {
				last = k
				continue
			}
			return usageErr(p.tok[k], "The option '%s' conflicts with the '%s' option in the '%s' tunnel type",
				optNames[k], optNames[last], p.tunType)
		}
	}
	return nil
}

// command builds the Command from the parser state.
func (p *parser) command() Command {
	c := Command{Kind: p.kind, HasService: p.set[optService]}
	if c.HasService {
		k := spec.ServiceKey{Proto: p.proto}
		if p.fwmark != 0 {
			k.FWMark = p.fwmark
			k.IPv6 = p.svcAF == 6
		} else {
			k.Addr = p.addr
			k.Port = p.port
		}
		c.Service = spec.Service{
			Key:        k,
			Scheduler:  p.sched,
			Flags:      p.flags,
			Persistent: p.persistent,
			Timeout:    p.timeout,
			Netmask:    p.netmask,
			PE:         p.pe,
			OPS:        p.ops,
		}
	}
	switch p.kind {
	case CmdAddServer, CmdEditServer, CmdDelServer:
		c.Dest = spec.Dest{
			Addr:       p.daddr,
			Port:       p.dport,
			Fwd:        p.fwd,
			Weight:     p.weight,
			UThreshold: p.uthresh,
			LThreshold: p.lthresh,
			TunType:    p.tunType,
			TunPort:    p.tunPort,
			TunCsum:    p.tunFlags,
		}
	case CmdAddLaddr, CmdDelLaddr, CmdGetLaddr:
		c.Laddr = spec.Dest{Addr: p.laddr}
	case CmdSetTimeout:
		c.TimeoutTCP, c.TimeoutTCPFin, c.TimeoutUDP = p.tcp, p.tcpfin, p.udp
	case CmdStartDaemon, CmdStopDaemon:
		c.Daemon = p.daemon
	}
	s := p.set
	c.List = ListOptions{
		Numeric:        s[optNumeric],
		Connections:    s[optConnection],
		Stats:          s[optStats],
		Rate:           s[optRate],
		Exact:          s[optExact],
		Thresholds:     s[optThresholds],
		PersistentConn: s[optPersistentConn],
		TunInfo:        s[optTunInfo],
		NoSort:         s[optNoSort],
		Timeout:        s[optTimeout],
		Daemon:         s[optDaemon],
		JSON:           s[optJSON],
	}
	return c
}
