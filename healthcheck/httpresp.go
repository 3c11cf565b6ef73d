package healthcheck

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"hash"
	"strconv"
)

// Response is what an HTTP_GET or SSL_GET probe read from one URL.
type Response struct {
	// Received counts all bytes read, header included.
	Received int64
	// Status is the status line's code, 0 when there is no valid one.
	Status int
	// HeaderDone reports that the end of the header was seen.
	HeaderDone bool
	// ContentLength is the Content-Length header, -1 when absent or
	// invalid.
	ContentLength int64
	// BodyLen counts the body bytes read (after the header).
	BodyLen int64
	// Digest is the MD5 of the body (only the body, capped at
	// Content-Length when present), as 32 lower-case hex digits —
	// keepalived's digest and genhash's output.
	Digest string
	// Body holds the start of the body, up to the parser's limit (the
	// whole body for regex matching up to MaxRegexBody).
	Body []byte
}

// Limits of the response parser.
const (
	// MaxHeader bounds the header: its end must come within the first
	// MaxHeader bytes, or the response has no body.
	MaxHeader = 64 << 10
	// MaxRegexBody bounds the body kept for regex matching (keepalived
	// matches the stream; a match beyond this is not seen).
	MaxRegexBody = 1 << 20
)

// respParser reads an HTTP response as it arrives, as keepalived's
// http_process_stream does: the header is kept until its end ("\r\n\r\n"
// or "\n\n", whichever comes first); the body is hashed as it comes and
// kept up to keep bytes.
type respParser struct {
	r     Response
	head  []byte
	keep  int
	md5   hash.Hash
	hashN int64
	over  bool // header too long
}

func newRespParser(keep int) *respParser {
	return &respParser{keep: keep, md5: md5.New(), r: Response{ContentLength: -1}}
}

// Write consumes the next bytes of the response; it never fails.
func (p *respParser) Write(b []byte) (int, error) {
	p.r.Received += int64(len(b))
	if p.r.HeaderDone {
		p.body(b)
		return len(b), nil
	}
	if p.over {
		return len(b), nil
	}
	from := max(len(p.head)-3, 0)
	p.head = append(p.head, b...)
	win := p.head[:min(len(p.head), MaxHeader)]
	end, sep := -1, 0
	if from < len(win) {
		if i := bytes.Index(win[from:], []byte("\r\n\r\n")); i >= 0 {
			end, sep = from+i, 4
		}
		if i := bytes.Index(win[from:], []byte("\n\n")); i >= 0 && (end < 0 || from+i < end) {
			end, sep = from+i, 2
		}
	}
	if end < 0 {
		if len(p.head) >= MaxHeader {
			p.over = true
			p.head = p.head[:MaxHeader:MaxHeader]
		}
		return len(b), nil
	}
	rest := p.head[end+sep:]
	p.head = p.head[:end]
	p.r.HeaderDone = true
	p.r.ContentLength = contentLength(p.head)
	p.body(rest)
	return len(b), nil
}

// body hashes and keeps body bytes.
func (p *respParser) body(b []byte) {
	p.r.BodyLen += int64(len(b))
	h := b
	if cl := p.r.ContentLength; cl >= 0 {
		h = h[:min(int64(len(h)), max(cl-p.hashN, 0))]
	}
	p.md5.Write(h)
	p.hashN += int64(len(h))
	if n := min(len(b), p.keep-len(p.r.Body)); n > 0 {
		p.r.Body = append(p.r.Body, b[:n]...)
	}
}

// result finishes the response.
func (p *respParser) result() Response {
	r := p.r
	r.Status = statusCode(p.head)
	r.Digest = hex.EncodeToString(p.md5.Sum(nil))
	return r
}

// ParseResponse parses a whole response, keeping up to keep body bytes.
func ParseResponse(data []byte, keep int) Response {
	p := newRespParser(keep)
	_, _ = p.Write(data)
	return p.result()
}

// statusCode returns the code of the status line "HTTP/x.y NNN ...", or 0.
func statusCode(head []byte) int {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	if !bytes.HasPrefix(line, []byte("HTTP/")) {
		return 0
	}
	_, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return 0
	}
	rest = bytes.TrimLeft(rest, " ")
	if len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ' && rest[3] != '\r') {
		return 0
	}
	code := 0
	for _, c := range rest[:3] {
		if c < '0' || c > '9' {
			return 0
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return 0
	}
	return code
}

// contentLength finds Content-Length in a header, -1 when absent or
// invalid.
func contentLength(head []byte) int64 {
	for line := range bytes.Lines(head) {
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(name), []byte("Content-Length")) {
			continue
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(val)), 10, 64)
		if err != nil || n < 0 {
			return -1
		}
		return n
	}
	return -1
}
