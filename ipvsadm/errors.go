package ipvsadm

import (
	"fmt"
	"strconv"
)

// Exit codes ipvsadm 1.31 uses (ipvsadm.c: fail() and the return values of
// process_options).
const (
	// ExitOK is success.
	ExitOK = 0
	// ExitList is a listing failure (no such service for -L -t, ...) and
	// the ipvsadm-save wrapper's usage error.
	ExitList = 1
	// ExitKernel is an operation the kernel (here: the director) rejected;
	// ipvsadm returns -1.
	ExitKernel = 255
	// ExitUsage is the status of usage and validation errors (fail(2, ...)).
	ExitUsage = 2
	// ExitPopt is the status of "Try `ipvsadm -h' ..." and popt errors such
	// as "--foo: unknown option" (ipvsadm exits with -1).
	ExitPopt = 255
)

// Error is a command-line error as ipvsadm reports it: the CLI prints Msg
// (followed by a newline) to stderr and exits with Code.
type Error struct {
	Code int    // process exit status: ExitUsage (2) or ExitPopt (255)
	Msg  string // ipvsadm's message, byte for byte
	// Token is the offending argument as typed (for example "-w 70000" or
	// "--foo"), empty when the error is not about one argument. It is not
	// part of Msg; ParseRules adds it to its messages.
	Token string
}

// Error returns Msg.
func (e *Error) Error() string { return e.Msg }

func usageErr(tok, format string, a ...any) *Error {
	return &Error{Code: ExitUsage, Msg: fmt.Sprintf(format, a...), Token: tok}
}

// LineError is an error in one line of a rules file read by ParseRules.
// errors.As(err, new(*Error)) finds the underlying Error and its exit code.
type LineError struct {
	Name string // file name as given to ParseRules
	Line int    // 1-based line number
	Err  *Error
}

// Error formats the error as "name:line: message: \"token\"".
func (e *LineError) Error() string {
	s := e.Name + ":" + strconv.Itoa(e.Line) + ": " + e.Err.Msg
	if e.Err.Token != "" {
		s += ": " + strconv.Quote(e.Err.Token)
	}
	return s
}

// Unwrap returns the underlying *Error.
func (e *LineError) Unwrap() error { return e.Err }
