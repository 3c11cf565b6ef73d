package weights

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

func TestParseWeights(t *testing.T) {
	w, err := Parse("rs1=3, rs2=1")
	if err != nil || len(w) != 2 || w["rs1"] != 3 || w["rs2"] != 1 {
		t.Fatalf("Parse: %v %v", w, err)
	}
	for _, bad := range []string{"rs1", "=3", "rs1=x", "rs1=1,rs1=2"} {
		if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "--weights") {
			t.Errorf("Parse(%q) = %v, want an error naming --weights", bad, err)
		}
	}
	if w, err := Parse(""); err != nil || w != nil {
		t.Fatalf("empty: %v %v", w, err)
	}
}

func FuzzParseWeights(f *testing.F) {
	for _, s := range []string{"rs1=3,rs2=1", "", "a=", "=1", "x=1,x=2", "rs1=-5", "rs1=99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("%d bytes %.200q", len(s), s) })()
		w, err := Parse(s)
		if err != nil {
			return
		}
		// What parses formats back into something that parses the same.
		var parts []string
		for k, v := range w {
			if k == "" || strings.ContainsAny(k, "=,") {
				t.Fatalf("%q gave the name %q", s, k)
			}
			parts = append(parts, k+"="+itoa(v))
		}
		again, err := Parse(strings.Join(parts, ","))
		if err != nil || len(again) != len(w) {
			t.Fatalf("%q: %v re-parsed as %v (%v)", s, w, again, err)
		}
		for k, v := range w {
			if again[k] != v {
				t.Fatalf("%q: %s=%d re-parsed as %d", s, k, v, again[k])
			}
		}
	})
}

func itoa(v int) string {
	var b bytes.Buffer
	if v < 0 {
		b.WriteByte('-')
		v = -v
	}
	d := []byte{}
	for {
		d = append([]byte{byte('0' + v%10)}, d...)
		v /= 10
		if v == 0 {
			break
		}
	}
	b.Write(d)
	return b.String()
}
