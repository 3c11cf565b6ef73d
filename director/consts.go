package director

import "flag"

var flagErrHelp = flag.ErrHelp

// DefaultControlSocket is the abstract unix socket uvsadm talks to.
const DefaultControlSocket = "uvs-control"
