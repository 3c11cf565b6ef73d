package healthcheck

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpTestServer accepts connections on 127.0.0.1 and runs dialogue on
// each; it returns the address and the lines clients sent.
func smtpTestServer(t testing.TB, dialogue func(c net.Conn, r *bufio.Reader, got func(string))) (netip.AddrPort, func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot listen: %v", err)
	}
	var mu sync.Mutex
	var lines []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				dialogue(c, bufio.NewReader(c), func(s string) {
					mu.Lock()
					lines = append(lines, s)
					mu.Unlock()
				})
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).AddrPort(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
}

// smtpScript is a server dialogue: send banner, then for each client line
// the next reply; a reply "" closes the connection, a reply "-" stays
// silent until the client goes away.
func smtpScript(banner string, replies ...string) func(net.Conn, *bufio.Reader, func(string)) {
	return func(c net.Conn, r *bufio.Reader, got func(string)) {
		if banner == "-" {
			_, _ = r.ReadString('\n') // hold the line until the client hangs up
			return
		}
		if _, err := c.Write([]byte(banner)); err != nil || banner == "" {
			return
		}
		for _, reply := range replies {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			got(strings.TrimRight(line, "\r\n"))
			switch reply {
			case "":
				return
			case "-":
				_, _ = r.ReadString('\n')
				return
			}
			if _, err := c.Write([]byte(reply)); err != nil {
				return
			}
		}
	}
}

func TestSMTPCheckDialogues(t *testing.T) {
	long := 10 * time.Second
	short := 300 * time.Millisecond
	tests := []struct {
		name    string
		script  func(net.Conn, *bufio.Reader, func(string))
		timeout time.Duration
		ok      bool
		msg     string
	}{
		{"good", smtpScript("220 mx.example ESMTP\r\n", "250 mx.example\r\n", "221 bye\r\n"), long, true, "succeed on service."},
		{"multi-line banner and HELO reply", smtpScript("220-mx.example ESMTP\r\n220-more\r\n220 ready\r\n", "250-mx.example\r\n250 SIZE 1000\r\n", "221 bye\r\n"), long, true, "succeed on service."},
		{"any QUIT reply", smtpScript("220 mx\r\n", "250 ok\r\n", "500 whatever\r\n"), long, true, "succeed on service."},
		{"bare LF", smtpScript("220 mx\n", "250 ok\n", "221 bye\n"), long, true, "succeed on service."},
		{"bad banner", smtpScript("554 go away\r\n", "250 ok\r\n", "221 bye\r\n"), long, false, "Bad greeting banner"},
		{"garbage banner", smtpScript("hello\r\n"), long, false, "Bad greeting banner"},
		{"bad HELO reply", smtpScript("220 mx\r\n", "501 syntax\r\n", "221 bye\r\n"), long, false, "Bad HELO response"},
		{"closed after HELO", smtpScript("220 mx\r\n", ""), long, false, "Read failure"},
		{"closed after QUIT", smtpScript("220 mx\r\n", "250 ok\r\n", ""), long, false, "Read failure"},
		{"silent server", smtpScript("-"), short, false, "Read failure"},
		{"silent after HELO", smtpScript("220 mx\r\n", "-"), short, false, "Read failure"},
		{"line too long", smtpScript("220 " + strings.Repeat("x", 2*smtpMaxLine) + "\r\n"), long, false, "Read failure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, lines := smtpTestServer(t, tt.script)
			r := (&SMTPCheck{}).Probe(context.Background(), Target{Addr: addr, Timeout: tt.timeout})
			if r.OK != tt.ok || !strings.Contains(r.Msg, tt.msg) {
				t.Errorf("got %+v, want ok=%v msg …%q…", r, tt.ok, tt.msg)
			}
			if tt.ok {
				want := []string{"HELO " + SMTPDefaultHelo, "QUIT"}
				if got := lines(); strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("server got %q, want %q", got, want)
				}
			}
		})
	}
}

func TestSMTPCheckHeloName(t *testing.T) {
	addr, lines := smtpTestServer(t, smtpScript("220 mx\r\n", "250 ok\r\n", "221 bye\r\n"))
	r := (&SMTPCheck{HeloName: "lb1.example.net"}).Probe(context.Background(), Target{Addr: addr, Timeout: 10 * time.Second})
	if !r.OK {
		t.Fatalf("probe: %+v", r)
	}
	if got := lines(); len(got) == 0 || got[0] != "HELO lb1.example.net" {
		t.Errorf("server got %q", got)
	}
}

func TestSMTPCheckRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	r := (&SMTPCheck{}).Probe(context.Background(), Target{Addr: addr, Timeout: 10 * time.Second})
	if r.OK || !strings.Contains(r.Msg, "Error connecting to server") {
		t.Errorf("got %+v", r)
	}
}

func TestSMTPReplyCode(t *testing.T) {
	for in, want := range map[string]int{"220 x": 220, "250-x": 250, "221": 221, "22": -1, "2x0 ": -1, "": -1, "999 ": 999} {
		if got := SMTPReplyCode([]byte(in)); got != want {
			t.Errorf("SMTPReplyCode(%q) = %d, want %d", in, got, want)
		}
	}
}
