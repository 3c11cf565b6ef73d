package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// UserHZ is the unit of the times in /proc/stat and /proc/PID/stat
// (USER_HZ, 100 on every Linux architecture uvs builds for).
const UserHZ = 100

// CPUTimes is one CPU's line of /proc/stat, in UserHZ ticks.
type CPUTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// Busy is the time spent running anything: user, nice, system, irq, softirq.
func (c CPUTimes) Busy() uint64 { return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ }

// Total is every accounted tick, steal included.
func (c CPUTimes) Total() uint64 { return c.Busy() + c.Idle + c.IOWait + c.Steal }

// Sub returns c - o field by field (o taken earlier than c). A counter that
// went backwards (CPU hot-plug) gives 0.
func (c CPUTimes) Sub(o CPUTimes) CPUTimes {
	d := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return CPUTimes{d(c.User, o.User), d(c.Nice, o.Nice), d(c.System, o.System), d(c.Idle, o.Idle),
		d(c.IOWait, o.IOWait), d(c.IRQ, o.IRQ), d(c.SoftIRQ, o.SoftIRQ), d(c.Steal, o.Steal)}
}

// Frac returns part/Total as a fraction, 0 when nothing was accounted.
func (c CPUTimes) Frac(part uint64) float64 {
	if t := c.Total(); t > 0 {
		return float64(part) / float64(t)
	}
	return 0
}

// ParseProcStat reads the per-CPU lines ("cpu0 ...", "cpu1 ...") of
// /proc/stat and returns them indexed by CPU number. The aggregate "cpu"
// line is skipped. Missing trailing fields (old kernels) read as 0.
func ParseProcStat(r io.Reader) ([]CPUTimes, error) {
	var out []CPUTimes
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil || n < 0 || n > 4096 {
			return nil, fmt.Errorf("/proc/stat: bad cpu line %q", sc.Text())
		}
		var v [8]uint64
		for i := 0; i < len(v) && i+1 < len(f); i++ {
			if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return nil, fmt.Errorf("/proc/stat: %s field %d %q: %w", f[0], i+1, f[i+1], err)
			}
		}
		for len(out) <= n {
			out = append(out, CPUTimes{})
		}
		out[n] = CPUTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("/proc/stat: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("/proc/stat: no per-CPU line")
	}
	return out, nil
}

// PIDStat is what the harness needs from /proc/PID/stat.
type PIDStat struct {
	PPID      int
	Flags     uint64
	UTime     uint64 // ticks
	STime     uint64 // ticks
	StartTime uint64 // ticks after boot
}

// pfKthread is PF_KTHREAD in the flags field: a kernel thread.
const pfKthread = 0x00200000

// Kernel reports whether the task is a kernel thread.
func (s PIDStat) Kernel() bool { return s.Flags&pfKthread != 0 }

// ParsePIDStat parses /proc/PID/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted after its last ')'.
func ParsePIDStat(b []byte) (PIDStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return PIDStat{}, fmt.Errorf("/proc/PID/stat: no ')' in %q", trunc(b))
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); fields are 1-based in proc(5).
	field := func(n int) (uint64, error) {
		if n-3 >= len(f) {
			return 0, fmt.Errorf("/proc/PID/stat: only %d fields", len(f)+2)
		}
		return strconv.ParseUint(f[n-3], 10, 64)
	}
	var s PIDStat
	var err error
	var v uint64
	if v, err = field(4); err != nil {
		return s, err
	}
	s.PPID = int(v)
	if s.Flags, err = field(9); err != nil {
		return s, err
	}
	if s.UTime, err = field(14); err != nil {
		return s, err
	}
	if s.STime, err = field(15); err != nil {
		return s, err
	}
	if s.StartTime, err = field(22); err != nil {
		return s, err
	}
	return s, nil
}

// ParseVmRSS returns the VmRSS line of /proc/PID/status in bytes.
func ParseVmRSS(status []byte) (int64, error) {
	for line := range strings.SplitSeq(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc/PID/status: odd VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/PID/status: VmRSS %q: %w", f[0], err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc/PID/status: no VmRSS line")
}

func trunc(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}
