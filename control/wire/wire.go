// Package wire is the control socket's protocol, shared by uvsd's control
// server and the uvsadm client: the socket's name, the request, and the
// frames both sides exchange. It imports nothing of the data plane.
//
// Every message is a frame: one type byte, a 4-byte big-endian payload
// length, the payload. The client sends one FrameRequest (a JSON Request);
// the server answers with any number of FrameStdout/FrameStderr chunks, in
// the order the command wrote them, and one FrameExit whose payload is the
// exit status as a 4-byte big-endian int.
package wire

import (
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

// Frame types and limits.
const (
	FrameRequest = 'Q'
	FrameStdout  = 'O'
	FrameStderr  = 'E'
	FrameExit    = 'X'

	// Version is the protocol version a Request carries.
	Version = 1
	// MaxRequest bounds a request: a -R rules file travels in it.
	MaxRequest = 64 << 20
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

// ReadFrame reads one frame whose payload is at most limit bytes.
func ReadFrame(r io.Reader, limit int) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if uint64(n) > uint64(limit) {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds the limit of %d", n, limit)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
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
