package ipvsadm

// optIdx indexes ipvsadm's option table (OPTC_* in ipvsadm.c); the order
// decides which legality error is reported first. optLaddr is the DPVS
// FULLNAT addition, optJSON uvs's (--counters --json).
type optIdx uint8

const (
	optNumeric optIdx = iota
	optConnection
	optService
	optScheduler
	optPersistent
	optNetmask
	optServer
	optForward
	optWeight
	optUThreshold
	optLThreshold
	optMcast
	optTimeout
	optDaemon
	optStats
	optRate
	optThresholds
	optPersistentConn
	optNoSort
	optSyncID
	optExact
	optOnePacket
	optPE
	optSchedFlags
	optMcastGroup
	optMcastPort
	optMcastTTL
	optSyncMaxLen
	optTunInfo
	optTunType
	optTunPort
	optTunNoCsum
	optTunCsum
	optTunRemCsum
	optLaddr
	optJSON
	numOpts
)

// optNames are the names used in legality messages.
var optNames = [numOpts]string{
	"numeric", "connection", "service-address", "scheduler", "persistent",
	"netmask", "real-server", "forwarding-method", "weight", "u-threshold",
	"l-threshold", "mcast-interface", "timeout", "daemon", "stats", "rate",
	"thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops", "pe",
	"sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen",
	"tun-info", "tun-type", "tun-port", "tun-nocsum", "tun-csum",
	"tun-remcsum", "laddr", "json",
}

// cmdNames are the command names used in legality messages.
func cmdName(k CmdKind) string {
	switch k {
	case CmdAddService:
		return "add-service"
	case CmdEditService:
		return "edit-service"
	case CmdDelService:
		return "delete-service"
	case CmdFlush:
		return "flush"
	case CmdList:
		return "list"
	case CmdAddServer:
		return "add-server"
	case CmdDelServer:
		return "delete-server"
	case CmdEditServer:
		return "edit-server"
	case CmdSetTimeout:
		return "set"
	case CmdStartDaemon:
		return "start-daemon"
	case CmdStopDaemon:
		return "stop-daemon"
	case CmdRestore:
		return "restore"
	case CmdSave:
		return "save"
	case CmdZero:
		return "zero"
	case CmdAddLaddr:
		return "add-laddr"
	case CmdDelLaddr:
		return "del-laddr"
	case CmdGetLaddr:
		return "get-laddr"
	case CmdListCheckers:
		return "list-checkers"
	case CmdCounters:
		return "counters"
	case CmdHelp:
		return "help"
	case CmdVersion:
		return "version"
	}
	return "none"
}

// String returns the ipvsadm command name ("add-service", "list", ...).
func (k CmdKind) String() string { return cmdName(k) }

// Legality values (commands_v_options): '+' required, 'x' illegal,
// '1' at most one of the group, ' ' optional.
type legalRow [numOpts]byte

func row(required, optional, exclusive []optIdx) legalRow {
	var r legalRow
	for i := range r {
		r[i] = 'x'
	}
	for _, o := range required {
		r[o] = '+'
	}
	for _, o := range optional {
		r[o] = ' '
	}
	for _, o := range exclusive {
		r[o] = '1'
	}
	return r
}

// legality returns the commands_v_options row of a command (ipvsadm 1.31
// plus the FULLNAT laddr commands). ok is false for -h, -v and CmdNone,
// which take no options.
func legality(k CmdKind) (legalRow, bool) {
	svcOpts := []optIdx{optScheduler, optPersistent, optNetmask, optOnePacket, optPE, optSchedFlags}
	destOpts := []optIdx{optForward, optWeight, optUThreshold, optLThreshold,
		optTunType, optTunPort, optTunNoCsum, optTunCsum, optTunRemCsum}
	listOpts := []optIdx{optNumeric, optStats, optRate, optThresholds, optPersistentConn,
		optNoSort, optSyncID, optExact, optTunInfo}
	switch k {
	case CmdAddService, CmdEditService:
		return row([]optIdx{optService}, svcOpts, nil), true
	case CmdDelService:
		return row([]optIdx{optService}, nil, nil), true
	case CmdFlush, CmdSetTimeout, CmdRestore:
		return row(nil, nil, nil), true
	case CmdList:
		return row(nil, listOpts, []optIdx{optConnection, optService, optTimeout, optDaemon}), true
	case CmdAddServer, CmdEditServer:
		return row([]optIdx{optService, optServer}, destOpts, nil), true
	case CmdDelServer:
		return row([]optIdx{optService, optServer}, nil, nil), true
	case CmdStartDaemon:
		return row(nil, []optIdx{optMcast, optSyncID, optMcastGroup, optMcastPort, optMcastTTL, optSyncMaxLen}, nil), true
	case CmdStopDaemon:
		return row(nil, []optIdx{optSyncID}, nil), true
	case CmdSave:
		return row(nil, []optIdx{optNumeric}, nil), true
	case CmdZero:
		return row(nil, []optIdx{optService}, nil), true
	case CmdAddLaddr, CmdDelLaddr:
		return row([]optIdx{optService, optLaddr}, nil, nil), true
	case CmdGetLaddr:
		return row([]optIdx{optService}, []optIdx{optNumeric, optLaddr}, nil), true
	case CmdListCheckers:
		return row(nil, []optIdx{optNumeric}, nil), true
	case CmdCounters:
		return row(nil, []optIdx{optJSON}, nil), true
	}
	return legalRow{}, false
}

// argKind says whether an option takes an argument.
type argKind uint8

const (
	argNone argKind = iota
	argRequired
	argOptional
)

// optID identifies an entry of the popt option table.
type optID uint8

const (
	_ optID = iota // zero: no option
	// commands
	idAdd
	idEdit
	idDel
	idClear
	idList
	idZero
	idAddServer
	idEditServer
	idDelServer
	idSet
	idHelp
	idVersion
	idRestore
	idSave
	idStartDaemon
	idStopDaemon
	idAddLaddr
	idDelLaddr
	idGetLaddr
	idListCheckers
	idCounters
	// options
	idTCP
	idUDP
	idSCTP
	idFWMark
	idScheduler
	idPersistent
	idNetmask
	idRealServer
	idMasq
	idIPIP
	idGatewaying
	idFullNAT
	idWeight
	idUThreshold
	idLThreshold
	idNumeric
	idConnection
	idMcastInterface
	idSyncID
	idTimeout
	idDaemon
	idStats
	idRate
	idThresholds
	idPersistentConn
	idNoSort
	idSort
	idExact
	idIPv6
	idOps
	idPE
	idSchedFlags
	idMcastGroup
	idMcastPort
	idMcastTTL
	idSyncMaxLen
	idTunInfo
	idTunType
	idTunPort
	idTunNoCsum
	idTunCsum
	idTunRemCsum
	idLaddr
	idJSON
)

// optDef is one entry of the option table.
type optDef struct {
	long  string
	short byte
	arg   argKind
	id    optID
}

// optTable is ipvsadm 1.31's popt table plus DPVS's FULLNAT options.
// "-b" is resolved by the parser: --fullnat on -a/-e/-d, --sched-flags
// otherwise.
var optTable = [...]optDef{
	{"add-service", 'A', argNone, idAdd},
	{"edit-service", 'E', argNone, idEdit},
	{"delete-service", 'D', argNone, idDel},
	{"clear", 'C', argNone, idClear},
	{"list", 'L', argNone, idList},
	{"list", 'l', argNone, idList},
	{"zero", 'Z', argNone, idZero},
	{"add-server", 'a', argNone, idAddServer},
	{"edit-server", 'e', argNone, idEditServer},
	{"delete-server", 'd', argNone, idDelServer},
	{"set", 0, argNone, idSet},
	{"help", 'h', argNone, idHelp},
	{"version", 'v', argNone, idVersion},
	{"restore", 'R', argNone, idRestore},
	{"save", 'S', argNone, idSave},
	{"start-daemon", 0, argRequired, idStartDaemon},
	{"stop-daemon", 0, argRequired, idStopDaemon},
	{"add-laddr", 'P', argNone, idAddLaddr},
	{"del-laddr", 'Q', argNone, idDelLaddr},
	{"get-laddr", 'G', argNone, idGetLaddr},
	{"list-checkers", 0, argNone, idListCheckers},
	{"counters", 0, argNone, idCounters},
	{"tcp-service", 't', argRequired, idTCP},
	{"udp-service", 'u', argRequired, idUDP},
	{"sctp-service", 0, argRequired, idSCTP},
	{"fwmark-service", 'f', argRequired, idFWMark},
	{"scheduler", 's', argRequired, idScheduler},
	{"persistent", 'p', argOptional, idPersistent},
	{"netmask", 'M', argRequired, idNetmask},
	{"real-server", 'r', argRequired, idRealServer},
	{"masquerading", 'm', argNone, idMasq},
	{"ipip", 'i', argNone, idIPIP},
	{"gatewaying", 'g', argNone, idGatewaying},
	{"fullnat", 0, argNone, idFullNAT},
	{"weight", 'w', argRequired, idWeight},
	{"u-threshold", 'x', argRequired, idUThreshold},
	{"l-threshold", 'y', argRequired, idLThreshold},
	{"numeric", 'n', argNone, idNumeric},
	{"connection", 'c', argNone, idConnection},
	{"mcast-interface", 0, argRequired, idMcastInterface},
	{"syncid", 0, argRequired, idSyncID},
	{"timeout", 0, argNone, idTimeout},
	{"daemon", 0, argNone, idDaemon},
	{"stats", 0, argNone, idStats},
	{"rate", 0, argNone, idRate},
	{"thresholds", 0, argNone, idThresholds},
	{"persistent-conn", 0, argNone, idPersistentConn},
	{"nosort", 0, argNone, idNoSort},
	{"sort", 0, argNone, idSort},
	{"exact", 'X', argNone, idExact},
	{"ipv6", '6', argNone, idIPv6},
	{"ops", 'o', argNone, idOps},
	{"pe", 0, argRequired, idPE},
	{"sched-flags", 'b', argRequired, idSchedFlags},
	{"mcast-group", 0, argRequired, idMcastGroup},
	{"mcast-port", 0, argRequired, idMcastPort},
	{"mcast-ttl", 0, argRequired, idMcastTTL},
	{"sync-maxlen", 0, argRequired, idSyncMaxLen},
	{"tun-info", 0, argNone, idTunInfo},
	{"tun-type", 0, argRequired, idTunType},
	{"tun-port", 0, argRequired, idTunPort},
	{"tun-nocsum", 0, argNone, idTunNoCsum},
	{"tun-csum", 0, argNone, idTunCsum},
	{"tun-remcsum", 0, argNone, idTunRemCsum},
	{"laddr", 'z', argRequired, idLaddr},
	{"json", 0, argNone, idJSON},
}

// fullnatShort is the meaning of "-b" on the real-server commands.
var fullnatShort = optDef{"fullnat", 'b', argNone, idFullNAT}

func lookupLong(name string) (optDef, bool) {
	for _, d := range optTable {
		if d.long == name {
			return d, true
		}
	}
	return optDef{}, false
}

func lookupShort(c byte, cmd CmdKind) (optDef, bool) {
	if c == 'b' && (cmd == CmdAddServer || cmd == CmdEditServer || cmd == CmdDelServer) {
		return fullnatShort, true
	}
	for _, d := range optTable {
		if d.short == c && c != 0 {
			return d, true
		}
	}
	return optDef{}, false
}
