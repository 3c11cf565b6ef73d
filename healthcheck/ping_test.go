package healthcheck

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/uvs-lb/uvs/internal/fuzzwatch"
)

func FuzzPingReplyMatches(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 9, 0, 5}, 1, true)
	f.Add(append([]byte{129, 0, 0, 0, 0, 9, 0, 5}, pingPayload...), 58, false)
	f.Fuzz(func(t *testing.T, b []byte, proto int, checkID bool) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf("proto %d, checkID %t, %d bytes %.200q", proto, checkID, len(b), b) })()
		if proto != 1 && proto != 58 {
			return
		}
		if !PingReplyMatches(b, proto, checkID, 9, 5) {
			return
		}
		// A match is an echo reply (type 0 or 129, code ignored) with
		// sequence 5, identifier 9 when checked, and our payload.
		reply := byte(0)
		if proto == 58 {
			reply = 129
		}
		if len(b) < 8 || b[0] != reply || b[6] != 0 || b[7] != 5 ||
			checkID && (b[4] != 0 || b[5] != 9) || !bytes.Equal(b[8:], pingPayload) {
			t.Fatalf("PingReplyMatches(%x, %d, %v) = true", b, proto, checkID)
		}
	})
}
