package lab

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress shows that something longer than a second is going on: a
// spinner with the elapsed time on a terminal, one plain line otherwise.
type progress struct {
	w   io.Writer
	tty bool
	mu  sync.Mutex // one indicator at a time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		p.tty = isTerminal(f)
	}
	return p
}

// after is how long a step runs before progress shows.
const progressAfter = time.Second

// start begins an indicator for msg; the returned function ends it.
func (p *progress) start(msg string) (stop func()) {
	if p == nil || p.w == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	begin := time.Now()
	go func() {
		defer close(finished)
		select {
		case <-done:
			return
		case <-time.After(progressAfter):
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.tty {
			fmt.Fprintf(p.w, "... %s\n", msg)
			<-done
			return
		}
		frames := []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(p.w, "\r%c %s %.1fs ", frames[i%len(frames)], msg, time.Since(begin).Seconds())
			select {
			case <-done:
				fmt.Fprint(p.w, "\r\033[K")
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
		})
	}
}
