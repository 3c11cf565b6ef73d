package director

import (
	"syscall"

	"github.com/uvs-lb/uvs/control"
	"github.com/uvs-lb/uvs/ipvsadm"
)

// connsyncFactory builds the sync daemons of package connsync: the master
// on the workers' tap, the backup applying into the connection table.
//
// NOT YET WIRED: connsync's daemons are being written; until they land a
// start is refused as before.
type connsyncFactory struct{ d *Director }

func (f connsyncFactory) Master(cfg ipvsadm.DaemonConfig, mtu int) (syncRunner, error) {
	return nil, &control.Error{Errno: syscall.EOPNOTSUPP, Msg: "Connection synchronization daemon is not supported by uvs"}
}

func (f connsyncFactory) Backup(cfg ipvsadm.DaemonConfig, mtu int) (syncRunner, error) {
	return nil, &control.Error{Errno: syscall.EOPNOTSUPP, Msg: "Connection synchronization daemon is not supported by uvs"}
}
