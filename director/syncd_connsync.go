package director

import (
	"time"

	"go.uber.org/zap"

	"github.com/uvs-lb/uvs/connsync"
	"github.com/uvs-lb/uvs/ipvsadm"
)

// connsyncFactory builds the sync daemons of package connsync: the master
// drains the workers' tap (Env.Sync), the backup applies what it receives
// to the connection table, resolving services and real servers in the
// published snapshot.
type connsyncFactory struct{ d *Director }

func (f connsyncFactory) Master(cfg ipvsadm.DaemonConfig, mtu int) (syncRunner, error) {
	return connsync.NewMaster(toConnsync(cfg), f.d.tap, f.d.log)
}

func (f connsyncFactory) Backup(cfg ipvsadm.DaemonConfig, mtu int) (syncRunner, error) {
	d := f.d
	a := connsync.NewTableApplier(d.Conns, &d.snap, func() int64 { return int64(time.Since(d.epoch)) }, d.sysctls.Policy.Threshold)
	return connsync.NewBackup(toConnsync(cfg), a, d.log)
}

func toConnsync(c ipvsadm.DaemonConfig) connsync.Config {
	return connsync.Config{State: c.State, Interface: c.McastIfn, SyncID: c.SyncID, MaxLen: c.SyncMaxLen,
		Group: c.McastGroup, Port: c.McastPort, TTL: c.McastTTL}
}

func fromConnsync(c connsync.Config) ipvsadm.DaemonConfig {
	return ipvsadm.DaemonConfig{State: c.State, McastIfn: c.Interface, SyncID: c.SyncID, SyncMaxLen: c.MaxLen,
		McastGroup: c.Group, McastPort: c.Port, McastTTL: c.TTL}
}

// syncStatsFields are a stopped daemon's counters for its last log line:
// what the master sent (and what the workers could not queue), what the
// backup received, applied and rejected.
func syncStatsFields(r syncRunner) []zap.Field {
	switch x := r.(type) {
	case *connsync.Master:
		st := x.Stats()
		return []zap.Field{zap.Uint64("messages", st.Messages), zap.Uint64("entries", st.Entries),
			zap.Uint64("bytes", st.Bytes), zap.Uint64("send-errors", st.SendErrors),
			zap.Uint64("ring-drops", st.RingDrops), zap.Uint64("skipped", st.Skipped)}
	case *connsync.Backup:
		st := x.Stats()
		return []zap.Field{zap.Uint64("messages", st.Messages), zap.Uint64("applied", st.Applied),
			zap.Uint64("wrong-syncid", st.WrongSyncID), zap.Uint64("rejected", st.RejectedTotal()),
			zap.Uint64("read-errors", st.ReadErrors)}
	}
	return nil
}
