// Command uvsadm is ipvsadm 1.31 for uvs: it sends its command line to the
// uvs director (uvsd) of the current network namespace over the control
// socket and prints the answer, with ipvsadm's output and exit status.
//
// Installed names (symlinks) select the program it behaves as, by base
// name: uvsadm and ipvsadm (ipvsadm), uvsadm-save and ipvsadm-save
// (ipvsadm-save [-n]), uvsadm-restore and ipvsadm-restore (clears the
// table, then restores stdin as -R does).
//
// Environment:
//
//	UVS_NO_AUTOSTART=1     do not start uvsd when none answers; report
//	                       "Can't initialize ipvs: ..." and exit 2 instead
//	UVS_CONTROL_SOCKET=@x  talk to the director on this socket
//	                       (default @uvs-control, abstract, per namespace;
//	                       a name without "@" is a filesystem path)
//
// Before sending anything uvsadm checks who holds the socket (SO_PEERCRED):
// it talks only to a director running as root, or as its own user when
// it is not root. A socket held by anyone else (a process that took the
// name first) is reported with its pid and uid, exit status 2, and no
// director is started beside it. A user that is not root may list
// services (-L, -S); changes and the connection listing (-Lc) are root's,
// "Permission denied (you must be root)", exit status 255, as with the
// kernel.
//
// When no director answers and autostart is on, uvsadm starts uvsd (found
// next to uvsadm, else on PATH) detached, with no rules, on every up,
// non-loopback interface, logging to /run/uvs/uvsd-net<inode>.log, waits
// up to 5 s for it to answer and then runs the command.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/uvs-lb/uvs/control/client"
	"github.com/uvs-lb/uvs/control/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cli := &client.CLI{
		Client:      client.Client{Socket: os.Getenv(wire.SocketEnv)},
		NoAutostart: noAutostart(os.Getenv(client.AutostartEnv)),
	}
	if !cli.NoAutostart {
		l, err := client.NewExecLauncher()
		if err != nil {
			cli.Launcher = failedLauncher{err}
		} else {
			if cli.Client.Socket != "" {
				l.Env = append(os.Environ(), wire.SocketEnv+"="+cli.Client.Socket)
			}
			cli.Launcher = l
		}
	}
	code := cli.Main(ctx, os.Args[0], os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func noAutostart(v string) bool { return v != "" && v != "0" }

// failedLauncher reports why no uvsd could be found when one is needed.
type failedLauncher struct{ err error }

func (f failedLauncher) Lock() (func(), error)         { return func() {}, nil }
func (f failedLauncher) Launch() (<-chan error, error) { return nil, f.err }
