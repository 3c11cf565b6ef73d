package healthcheck

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"reflect"
	"testing"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

func TestParseResponse(t *testing.T) {
	for _, tc := range []struct {
		in         string
		status     int
		headerDone bool
		cl         int64
		body       string // what the digest covers
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, true, 5, "hello"},
		{"HTTP/1.1 200 OK\r\ncontent-length:  3 \r\n\r\nhello", 200, true, 3, "hel"},
		{"HTTP/1.0 404 Not Found\n\nnope", 404, true, -1, "nope"},
		{"HTTP/1.0 503\r\n\r\n", 503, true, -1, ""},
		{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 200, true, 10, "short"},
		{"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nbody", 200, true, -1, "body"},
		{"HTTP/1.1 200 OK\r\nX: y", 200, false, -1, ""},
		{"HTTP/1.1 2000 OK\r\n\r\nbody", 0, true, -1, "body"},
		{"HTTP/1.1 20x OK\r\n\r\n", 0, true, -1, ""},
		{"HTTP/1.1 099 OK\r\n\r\n", 0, true, -1, ""},
		{"SSH-2.0-OpenSSH\r\n", 0, false, -1, ""},
		{"", 0, false, -1, ""},
		// "\n\n" before "\r\n\r\n": the first separator ends the header.
		{"HTTP/1.0 200 OK\n\nA\r\n\r\nB", 200, true, -1, "A\r\n\r\nB"},
	} {
		r := ParseResponse([]byte(tc.in), 1<<10)
		sum := md5.Sum([]byte(tc.body))
		if r.Status != tc.status || r.HeaderDone != tc.headerDone || r.ContentLength != tc.cl ||
			r.Digest != hex.EncodeToString(sum[:]) || r.Received != int64(len(tc.in)) {
			t.Errorf("%q: %+v, want status %d header %v cl %d digest of %q", tc.in, r, tc.status, tc.headerDone, tc.cl, tc.body)
		}
	}
}

// The header's end must come within MaxHeader bytes.
func TestParseResponseLongHeader(t *testing.T) {
	long := append([]byte("HTTP/1.1 200 OK\r\nX: "), bytes.Repeat([]byte("a"), MaxHeader)...)
	long = append(long, "\r\n\r\nbody"...)
	if r := ParseResponse(long, 100); r.HeaderDone || r.BodyLen != 0 || r.Status != 200 {
		t.Errorf("header over MaxHeader: %+v", r)
	}
}

// chunked feeds data to the streaming parser in pieces of size n.
func chunked(data []byte, n, keep int) Response {
	p := newRespParser(keep)
	for len(data) > 0 {
		k := min(n, len(data))
		_, _ = p.Write(data[:k])
		data = data[k:]
	}
	return p.result()
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.0 404 Not Found\n\nnope",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhelloEXTRA",
		"HTTP/1.0 200 OK\n\nA\r\n\r\nB",
		"HTTP/1.1 301 Moved\r\nLocation: /\r\n\r",
		"",
	} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("n %d, %d bytes %.200q", n, len(data), data) })()
		const keep = 64
		whole := ParseResponse(data, keep)
		if got := chunked(data, int(n)+1, keep); !reflect.DeepEqual(got, whole) {
			t.Fatalf("in pieces of %d: %+v\nat once: %+v", int(n)+1, got, whole)
		}
		if whole.Status != 0 && (whole.Status < 100 || whole.Status > 999) {
			t.Fatalf("status %d", whole.Status)
		}
		if whole.Received != int64(len(data)) || whole.BodyLen > whole.Received || len(whole.Body) > keep {
			t.Fatalf("lengths: %+v of %d bytes", whole, len(data))
		}
		if whole.HeaderDone && whole.ContentLength < 0 && whole.BodyLen <= keep {
			sum := md5.Sum(whole.Body)
			if hex.EncodeToString(sum[:]) != whole.Digest {
				t.Fatalf("digest %s is not the body's", whole.Digest)
			}
		}
	})
}
