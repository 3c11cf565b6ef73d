package director

import "flag"

var flagErrHelp = flag.ErrHelp
