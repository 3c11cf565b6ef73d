// Package weights parses uvs-lab's --weights value, the real servers'
// weights by name. It links nothing but the standard library, so its
// fuzz target runs in a small binary.
package weights

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse parses "rs1=3,rs2=1": names and integer weights, each name
// once; "" is no weights (nil).
func Parse(s string) (map[string]int, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]int{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--weights: %q is not NAME=WEIGHT", kv)
		}
		w, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("--weights: weight of %s: %q is not a number", k, v)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--weights: %s given twice", k)
		}
		out[k] = w
	}
	return out, nil
}
