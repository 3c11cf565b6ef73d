package healthcheck

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"
)

// SMTPCheck is keepalived's SMTP_CHECK (check_smtp.c): connect over TCP,
// expect a 220 banner, send "HELO <HeloName>", expect 250, send QUIT and
// read its reply (any reply line will do). Every step (connect, each read,
// each write) has Target.Timeout. A reply may span several lines
// ("250-…" continuation lines); its code is the three digits the last line
// starts with.
type SMTPCheck struct {
	// HeloName is helo_name; empty means smtpchecker.keepalived.org.
	HeloName string
}

// SMTPDefaultHelo is helo_name's default (check_smtp.h).
const SMTPDefaultHelo = "smtpchecker.keepalived.org"

// smtpMaxLine bounds one reply line (RFC 5321 §4.5.3.1.5: 512 octets).
const smtpMaxLine = 1024

// Probe holds one SMTP dialogue (see SMTPCheck).
func (s *SMTPCheck) Probe(ctx context.Context, t Target) Result {
	name := ServiceString(t.Addr, "tcp")
	fail := func(format string, args ...any) Result {
		return Result{Msg: fmt.Sprintf(format, args...)}
	}
	dctx, cancel := probeContext(ctx, t)
	conn, err := probeDialer(t, false).DialContext(dctx, "tcp", t.Addr.String())
	cancel()
	if err != nil {
		if IsTimeout(err) {
			return fail("Connection timeout to server %s.", name)
		}
		return fail("Error connecting to server %s: %v.", name, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(longAgo) })
	defer stop()
	step := func() {
		if t.Timeout > 0 {
			_ = conn.SetDeadline(time.Now().Add(t.Timeout))
		}
	}
	r := bufio.NewReaderSize(conn, smtpMaxLine)

	step()
	code, err := smtpReadReply(r)
	if err != nil {
		return fail("Read failure from server %s: %v.", name, err)
	}
	if code != 220 {
		return fail("Bad greeting banner from server %s.", name)
	}
	helo := s.HeloName
	if helo == "" {
		helo = SMTPDefaultHelo
	}
	step()
	if _, err := fmt.Fprintf(conn, "HELO %s\r\n", helo); err != nil {
		return fail("Write failure to server %s: %v.", name, err)
	}
	step()
	code, err = smtpReadReply(r)
	if err != nil {
		return fail("Read failure from server %s: %v.", name, err)
	}
	if code != 250 {
		return fail("Bad HELO response from server %s.", name)
	}
	step()
	if _, err := conn.Write([]byte("QUIT\r\n")); err != nil {
		return fail("Write failure to server %s: %v.", name, err)
	}
	step()
	if _, err := smtpReadLine(r); err != nil {
		return fail("Read failure from server %s: %v.", name, err)
	}
	return Result{OK: true, Msg: fmt.Sprintf("Remote SMTP server %s succeed on service.", name)}
}

// errSMTPReply reports a reply line that does not start with a code.
var errSMTPReply = errors.New("malformed SMTP reply")

// smtpReadReply reads one reply, continuation lines included, and returns
// its code, or -1 when the last line has no three-digit code.
func smtpReadReply(r *bufio.Reader) (int, error) {
	for {
		line, err := smtpReadLine(r)
		if err != nil {
			return 0, err
		}
		if len(line) >= 4 && line[3] == '-' {
			continue
		}
		return SMTPReplyCode(line), nil
	}
}

// smtpReadLine reads one CRLF- (or LF-) terminated line.
func smtpReadLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("%w: line longer than %d bytes", errSMTPReply, smtpMaxLine)
	}
	return line, err
}

// SMTPReplyCode is smtp_get_status: the number the line starts with when
// its first three bytes are digits, else -1.
func SMTPReplyCode(line []byte) int {
	if len(line) < 3 {
		return -1
	}
	code := 0
	for _, c := range line[:3] {
		if c < '0' || c > '9' {
			return -1
		}
		code = code*10 + int(c-'0')
	}
	return code
}
