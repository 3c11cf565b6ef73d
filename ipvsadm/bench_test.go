package ipvsadm

import (
	"io"
	"strings"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	args := strings.Fields("-a -t 10.0.0.100:80 -r 10.0.0.7:8080 -m -w 4 -x 100 -y 10")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(args); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRules(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRules(strings.NewReader(saveGolden), "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormatList(b *testing.B) {
	tab := referenceTable()
	b.ReportAllocs()
	for b.Loop() {
		if err := FormatList(io.Discard, tab, ListOptions{Numeric: true}, DefaultConnTab); err != nil {
			b.Fatal(err)
		}
	}
}
