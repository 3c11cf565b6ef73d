package dataplane

import (
	"fmt"
	"runtime/debug"
)

// PanicError is what Worker.Run returns when the pipeline panicked: the
// value recovered and the goroutine's stack at the panic. Error is one
// line; the stack is for the log's detail.
type PanicError struct {
	Value any
	Stack []byte
}

func newPanicError(v any) *PanicError { return &PanicError{Value: v, Stack: debug.Stack()} }

func (e *PanicError) Error() string { return fmt.Sprintf("dataplane: worker panic: %v", e.Value) }

// Unwrap returns the value recovered when it is an error (a runtime error,
// say), so that errors.As finds it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
