package sim

import (
	"fmt"
	"strconv"
)

// InputError is a problem in an input file: it names the file, the 1-based
// line and the offending token (empty when the whole line is at fault).
type InputError struct {
	File  string
	Line  int
	Token string
	Err   error
}

// Error formats the error as "file:line: token "tok": reason".
func (e *InputError) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Token != "" {
		s += ": token " + strconv.Quote(e.Token)
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the underlying reason.
func (e *InputError) Unwrap() error { return e.Err }

func inputErr(file string, line int, tok string, format string, args ...any) *InputError {
	return &InputError{File: file, Line: line, Token: tok, Err: fmt.Errorf(format, args...)}
}
