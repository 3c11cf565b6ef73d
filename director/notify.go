package director

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

// NotifySocketEnv is the variable through which systemd, for a service of
// Type=notify, names the socket the service reports its state on
// (sd_notify(3)).
const NotifySocketEnv = "NOTIFY_SOCKET"

// notify sends state ("READY=1", "STOPPING=1", "STATUS=...", one
// assignment per line) to the service manager on socket, the value of
// $NOTIFY_SOCKET: a unix datagram socket, a path or "@name" in the
// abstract namespace (Go's spelling of sd_notify's leading NUL). An
// empty socket (uvsd not run by systemd, or not as Type=notify) does
// nothing. The protocol is one datagram of newline-separated
// assignments; systemd reads the sender's pid from its credentials.
func notify(socket, state string) error {
	if socket == "" {
		return nil
	}
	if socket[0] != '/' && socket[0] != '@' {
		return fmt.Errorf("$%s %q: not a path or an abstract socket name", NotifySocketEnv, socket)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", socket, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", socket, err)
	}
	return nil
}

// readyState is what uvsd tells systemd once it serves: the control
// socket accepts, the kernel hooks are installed and the workers run.
func readyState(d *Director) string {
	return "READY=1\nMAINPID=" + strconv.Itoa(os.Getpid()) + "\nSTATUS=serving " +
		strconv.Itoa(len(d.State.Services())) + " virtual services"
}
