package wire

import "fmt"

// Cred is a socket peer's process and user.
type Cred struct {
	PID      int
	UID, GID uint32
}

// CheckServer decides whether a client running as uid may send its
// request to a server with credentials srv: a server running as root is
// trusted; one running as another user is trusted only by that same user
// (who could have started it anyway) and refused by everyone else — root
// above all, whose rules a squatter would otherwise receive and could
// answer with a forged success. The error names the server's process.
func CheckServer(socket string, srv Cred, uid uint32) error {
	if srv.UID == 0 || srv.UID == uid {
		return nil
	}
	return fmt.Errorf("control socket %s is held by pid %d running as uid %d, not root: not a uvs director, nothing sent "+
		"(stop that process and start uvsd)", socket, srv.PID, srv.UID)
}
