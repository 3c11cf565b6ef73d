// Package wire is the control socket's protocol, shared by uvsd's control
// server and the uvsadm client: the socket's name, the request, and the
// frames both sides exchange. It imports nothing of the data plane.
//
// Every message is a frame: one type byte, a 4-byte big-endian payload
// length, the payload. The client sends one FrameRequest (a JSON Request);
// the server answers with any number of FrameStdout/FrameStderr chunks, in
// the order the command wrote them, and one FrameExit whose payload is the
// exit status as a 4-byte big-endian int.
//
// # Who may hold and use the socket
//
// The socket is an abstract unix socket (DefaultSocketName). Such a name
// belongs to the network namespace, so "ip netns exec ns1 uvsadm" reaches
// the director of ns1 with nothing to configure, and it disappears with
// the process that bound it: a director killed with SIGKILL leaves no
// stale file behind. Its drawback is that any process of the namespace,
// root or not, may bind the name first. So neither side trusts the name:
//
//   - the client reads the server's credentials (SO_PEERCRED, PeerCred)
//     before it sends a byte and talks only to a server running as root,
//     or as its own uid when it is not root itself (CheckServer);
//   - uvsd, when the name is taken, names the process holding it and
//     refuses to start if that process is not root;
//   - the server reads the peer's credentials when it accepts, before
//     reading anything, and bounds what it reads by them: a 5-byte header
//     first, then at most MaxUnprivRequest bytes from a non-root peer and
//     MaxRequest from root, all within a short read deadline.
//
// A filesystem path under a directory only root may write would also
// stop a squatter from denying service (here uvsd refuses to start until
// the squatter is stopped), but it must be named per network namespace
// (ip netns exec does not remount /run: by the namespace's inode number,
// which the kernel reuses), and it outlives a director killed with
// SIGKILL, so the next director must tell a stale file from a live one
// and replace it without racing another. A path remains available
// through SocketEnv or uvsd --control; the same checks apply to it.
package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// DefaultSocketName is the control socket's address: a unix stream socket
// in the abstract namespace (the leading "@" is Go's spelling of the NUL
// byte), which the kernel scopes to the network namespace, so each
// namespace has its own director and "ip netns exec ns1 uvsadm" reaches
// the one of ns1. A name without "@" is a filesystem path.
const DefaultSocketName = "@uvs-control"

// SocketEnv is the environment variable that overrides DefaultSocketName
// for uvsadm and for the uvsd it autostarts.
const SocketEnv = "UVS_CONTROL_SOCKET"

// DefaultRequestTimeout bounds one control request, from accept to the
// last byte of the reply.
const DefaultRequestTimeout = 60 * time.Second

// DefaultReadTimeout bounds the reading of a request, from accept to its
// last byte: uvsadm has its whole request (a -R file included) in memory
// before it connects, so a peer slower than this is not uvsadm.
const DefaultReadTimeout = 5 * time.Second

// Frame types and limits.
const (
	FrameRequest = 'Q'
	FrameStdout  = 'O'
	FrameStderr  = 'E'
	FrameExit    = 'X'

	// Version is the protocol version a Request carries.
	Version = 1
	// HeaderSize is a frame's header: type and payload length.
	HeaderSize = 5
	// MaxRequest bounds a request from root: a -R rules file travels in
	// it (base64 in JSON: 16 MiB carry a file of 12 MiB, about 200 000
	// rules).
	MaxRequest = 16 << 20
	// MaxUnprivRequest bounds a request from a peer that is not root: a
	// listing's command line (its changes are refused whatever their size).
	MaxUnprivRequest = 64 << 10
	// MaxChunk is the largest reply chunk the server writes.
	MaxChunk = 64 << 10
	// MaxReplyRead is the largest reply chunk the client accepts.
	MaxReplyRead = 1 << 20
)

// Request is one uvsadm invocation sent to the director.
type Request struct {
	Version int      `json:"v"`
	Prog    string   `json:"prog"` // argv[0] (base name), selects the personality
	Args    []string `json:"args"` // argv[1:]
	Stdin   []byte   `json:"stdin,omitempty"`
}

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if len(payload) == 0 {
		return nil
	}
	_, err := w.Write(payload)
	return err
}

// TooLargeError is a frame whose header announces more than the reader
// accepts; nothing of its payload has been read.
type TooLargeError struct {
	Size, Limit uint32
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("frame of %d bytes exceeds the limit of %d", e.Size, e.Limit)
}

// ReadHeader reads a frame's header and returns its type and payload
// length, or a *TooLargeError when the length exceeds limit.
func ReadHeader(r io.Reader, limit int) (byte, uint32, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if uint64(n) > uint64(max(limit, 0)) {
		return hdr[0], n, &TooLargeError{Size: n, Limit: uint32(min(uint64(max(limit, 0)), 1<<32-1))}
	}
	return hdr[0], n, nil
}

// ReadPayload reads a payload of n bytes announced by ReadHeader. Memory
// grows with the bytes that arrive, not with what the header announced,
// so a peer that announces much and sends little costs little.
func ReadPayload(r io.Reader, n uint32) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(int(min(n, 64<<10)))
	if _, err := io.CopyN(&b, r, int64(n)); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b.Bytes(), nil
}

// ReadFrame reads one frame whose payload is at most limit bytes.
func ReadFrame(r io.Reader, limit int) (byte, []byte, error) {
	typ, n, err := ReadHeader(r, limit)
	if err != nil {
		return 0, nil, err
	}
	p, err := ReadPayload(r, n)
	if err != nil {
		return 0, nil, err
	}
	return typ, p, nil
}

// FrameWriter sends everything written to it as frames of one type, in
// chunks of at most MaxChunk bytes.
type FrameWriter struct {
	W    io.Writer
	Type byte
	err  error
}

func (f *FrameWriter) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n := 0
	for len(p) > 0 {
		c := min(len(p), MaxChunk)
		if f.err = WriteFrame(f.W, f.Type, p[:c]); f.err != nil {
			return n, f.err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}

// ExitPayload encodes an exit status for FrameExit.
func ExitPayload(code int) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(int32(code)))
	return b[:]
}

// ParseExit decodes a FrameExit payload.
func ParseExit(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("control reply: exit frame of %d bytes", len(p))
	}
	return int(int32(binary.BigEndian.Uint32(p))), nil
}
