package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

func TestReadFrameLimits(t *testing.T) {
	var b bytes.Buffer
	if err := WriteFrame(&b, FrameRequest, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	raw := b.Bytes()
	typ, p, err := ReadFrame(bytes.NewReader(raw), 5)
	if err != nil || typ != FrameRequest || string(p) != "hello" {
		t.Fatalf("ReadFrame: %q %q %v", typ, p, err)
	}
	// One byte over the limit: the header is refused, the payload unread.
	r := bytes.NewReader(raw)
	_, _, err = ReadFrame(r, 4)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Size != 5 || tl.Limit != 4 {
		t.Fatalf("over the limit: %v", err)
	}
	if r.Len() != 5 {
		t.Errorf("%d payload bytes read past a refused header", 5-r.Len())
	}
	// A payload cut short is an error, not a short frame.
	if _, _, err := ReadFrame(bytes.NewReader(raw[:7]), 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut payload: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(raw[:3]), 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut header: %v", err)
	}
}

// TestReadPayloadGrowsWithData: a header announcing MaxRequest followed by
// a few bytes costs about those bytes, not MaxRequest.
func TestReadPayloadGrowsWithData(t *testing.T) {
	var b bytes.Buffer
	_ = WriteFrame(&b, FrameRequest, make([]byte, 10))
	raw := b.Bytes()
	raw[1], raw[2], raw[3], raw[4] = 0x01, 0x00, 0x00, 0x00 // 16 MiB announced
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := ReadFrame(bytes.NewReader(raw), MaxRequest)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short payload: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("%d bytes allocated for a 10-byte payload announced as 16 MiB", n)
	}
}

func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	_ = WriteFrame(&b, FrameRequest, []byte(`{"v":1,"prog":"ipvsadm","args":["-Ln"]}`))
	f.Add(b.Bytes(), 64)
	f.Add([]byte{FrameRequest, 0xff, 0xff, 0xff, 0xff}, MaxUnprivRequest)
	f.Add([]byte{FrameExit, 0, 0, 0, 4, 0, 0, 0, 1}, 4)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, in []byte, limit int) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("limit %d, %d bytes %.200q", limit, len(in), in) })()
		limit %= 1 << 20
		typ, p, err := ReadFrame(bytes.NewReader(in), limit)
		if err != nil {
			return
		}
		if len(p) > max(limit, 0) || len(in) < HeaderSize+len(p) || in[0] != typ || !bytes.Equal(p, in[HeaderSize:HeaderSize+len(p)]) {
			t.Fatalf("ReadFrame(%x, %d) = %q, %x", in, limit, typ, p)
		}
		if typ == FrameExit {
			_, _ = ParseExit(p)
		}
	})
}

func TestCheckServer(t *testing.T) {
	for _, tc := range []struct {
		srv, client uint32
		ok          bool
	}{
		{0, 0, true},         // root's director, root's uvsadm
		{0, 1000, true},      // root's director, a user listing
		{1000, 1000, true},   // a user's own server (tests, --control paths)
		{65534, 0, false},    // a squatter and root: never
		{65534, 1000, false}, // a squatter and another user
		{1000, 65534, false},
	} {
		err := CheckServer("@x", Cred{PID: 42, UID: tc.srv}, tc.client)
		if (err == nil) != tc.ok {
			t.Errorf("server uid %d, client uid %d: %v", tc.srv, tc.client, err)
		}
		if err != nil && (!strings.Contains(err.Error(), "pid 42") || !strings.Contains(err.Error(), "@x")) {
			t.Errorf("error does not name the socket and its holder: %v", err)
		}
	}
}
