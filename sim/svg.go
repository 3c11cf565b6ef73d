package sim

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"time"
)

// Chart geometry (pixels).
const (
	svgWidth   = 900
	svgPlotH   = 260
	svgLeft    = 60
	svgRight   = 190 // room for the legend
	svgTop     = 40
	svgBottom  = 40
	svgBuckets = 600 // time buckets per line (the maximum in each is drawn)
)

var svgColors = [...]string{
	"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
	"#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
}

// writeSVG draws, for each service, the open connections of each
// destination over simulated time (one step line per destination; with
// many changes each of svgBuckets time slices shows its maximum).
func (s *simulator) writeSVG(out io.Writer) error {
	w := bufio.NewWriter(out)
	panelH := svgTop + svgPlotH + svgBottom
	height := panelH * max(len(s.svcs), 1)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="white"/>`+"\n", svgWidth, height)
	end := s.end
	if end <= 0 {
		end = time.Second
	}
	for i, st := range s.svcs {
		s.svgPanel(w, st, i*panelH, end)
	}
	fmt.Fprintln(w, `</svg>`)
	return w.Flush()
}

func (s *simulator) svgPanel(w *bufio.Writer, st *svcState, y0 int, end time.Duration) {
	plotW := svgWidth - svgLeft - svgRight
	top, bottom := y0+svgTop, y0+svgTop+svgPlotH
	peak := 1
	for _, ds := range st.order {
		peak = max(peak, ds.peak)
	}
	title := fmt.Sprintf("%s %s — open connections per destination", st.key, st.svc.Config().Scheduler)
	fmt.Fprintf(w, `<text x="%d" y="%d" font-size="14">%s</text>`+"\n", svgLeft, y0+22, html.EscapeString(title))
	// Axes and labels.
	fmt.Fprintf(w, `<path d="M%d %dV%dH%d" fill="none" stroke="black"/>`+"\n", svgLeft, top, bottom, svgLeft+plotW)
	step := niceStep(end / 4)
	for t := time.Duration(0); t <= end; t += step {
		x := float64(svgLeft) + float64(plotW)*float64(t)/float64(end)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%ss</text>`+"\n", x, bottom+16, trimTime(t))
	}
	for k := 0; k <= 4; k++ {
		y := bottom - svgPlotH*k/4
		fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="end">%d</text>`+"\n", svgLeft-6, y+4, (peak*k+2)/4)
		if k > 0 {
			fmt.Fprintf(w, `<path d="M%d %dH%d" stroke="#ddd"/>`+"\n", svgLeft, y, svgLeft+plotW)
		}
	}
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle">simulated time</text>`+"\n", svgLeft+plotW/2, bottom+32)
	for i, ds := range sortedByAddr(st.order) {
		color := svgColors[i%len(svgColors)]
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="`, color)
		px := func(t time.Duration) float64 {
			return float64(svgLeft) + float64(plotW)*float64(t)/float64(end)
		}
		py := func(n int) float64 {
			return float64(bottom) - float64(svgPlotH)*float64(n)/float64(peak)
		}
		cur := 0
		fmt.Fprintf(w, "%.1f,%.1f", px(0), py(0))
		for _, p := range bucketMax(ds.points, end) {
			fmt.Fprintf(w, " %.1f,%.1f %.1f,%.1f", px(p.t), py(cur), px(p.t), py(int(p.n)))
			cur = int(p.n)
		}
		fmt.Fprintf(w, " %.1f,%.1f\"/>\n", px(end), py(cur))
		ly := top + 14 + 18*i
		fmt.Fprintf(w, `<path d="M%d %dh20" stroke="%s" stroke-width="3"/>`+"\n", svgWidth-svgRight+15, ly-4, color)
		fmt.Fprintf(w, `<text x="%d" y="%d">%s (peak %d)</text>`+"\n", svgWidth-svgRight+40, ly, html.EscapeString(ds.ap.String()), ds.peak)
	}
}

// bucketMax reduces a step series to at most about 2*svgBuckets points:
// within each time slice it keeps the slice's maximum and its last value,
// so peaks survive the reduction.
func bucketMax(pts []point, end time.Duration) []point {
	if len(pts) <= 2*svgBuckets {
		return pts
	}
	out := make([]point, 0, 2*svgBuckets)
	slice := end / svgBuckets
	if slice <= 0 {
		slice = 1
	}
	i := 0
	for i < len(pts) {
		b := pts[i].t / slice
		start := b * slice
		hi, last := pts[i].n, pts[i].n
		for i < len(pts) && pts[i].t/slice == b {
			hi = max(hi, pts[i].n)
			last = pts[i].n
			i++
		}
		out = append(out, point{start, hi})
		if last != hi {
			out = append(out, point{start + slice - 1, last})
		}
	}
	return out
}

// trimTime formats seconds without trailing zeros: "12.5", "0", "0.25".
func trimTime(t time.Duration) string {
	s := fmtTime(t)
	for s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}

// niceStep rounds d up to 1, 2 or 5 times a power of ten (in nanoseconds,
// so at least 1 µs).
func niceStep(d time.Duration) time.Duration {
	for p := time.Microsecond; ; p *= 10 {
		for _, m := range [...]time.Duration{1, 2, 5} {
			if m*p >= d || p > maxSimTime {
				return m * p
			}
		}
	}
}
