package healthcheck

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

func TestSplitMiscPath(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"/bin/check", []string{"/bin/check"}},
		{"  /bin/check  a\tb  ", []string{"/bin/check", "a", "b"}},
		{`/bin/c "a b" 'c d'`, []string{"/bin/c", "a b", "c d"}},
		{`/bin/c a"b c"d`, []string{"/bin/c", "ab cd"}},
		{`/bin/c "it's" 'say "hi"'`, []string{"/bin/c", "it's", `say "hi"`}},
		{`/bin/c '' ""`, []string{"/bin/c", "", ""}},
		{`/bin/c a\ b \"q\" \\`, []string{"/bin/c", "a b", `"q"`, `\`}},
		{`/bin/c \x41\x4a\x4ak \101 \cA \E \t \n`, []string{"/bin/c", "AJJk", "A", "\x01", "\x1b", "\t", "\n"}},
		// \x takes every hex digit that follows, keeping the low 8 bits.
		{`/bin/c "\x20f\x69le"`, []string{"/bin/c", "\x0file"}},
		{`/bin/c \xg`, []string{"/bin/c", "xg"}},
		{`/bin/c \q`, []string{"/bin/c", "q"}},
		{`/etc/keepalived/notify_event.sh ' spaces\x20\x66\x69le '`, []string{"/etc/keepalived/notify_event.sh", " spaces file "}},
	}
	for _, tt := range tests {
		got, err := SplitMiscPath(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("SplitMiscPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "   ", `/bin/c "open`, `/bin/c 'open`, `/bin/c \`} {
		if got, err := SplitMiscPath(bad); err == nil {
			t.Errorf("SplitMiscPath(%q) = %q, want an error", bad, got)
		}
	}
}

func FuzzSplitMiscPath(f *testing.F) {
	for _, s := range []string{"/bin/c a b", `/bin/c "a b" 'c'`, `\x41\101\cA\E`, `"open`, `a\`, "", `'' ""`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(s), s) })()
		argv, err := SplitMiscPath(s)
		if err != nil {
			return
		}
		if len(argv) == 0 {
			t.Fatal("no error and no words")
		}
		// Plain words (no quotes, escapes or blanks) split at spaces and
		// tabs only, as keepalived does: not at the other characters
		// strings.Fields takes for space (U+00A0, U+0085, U+2028 ...).
		if !strings.ContainsAny(s, "\"'\\\n\r\v\f") {
			if want := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' }); !slices.Equal(argv, want) {
				t.Fatalf("SplitMiscPath(%q) = %q, want %q", s, argv, want)
			}
		}
	})
}
