package healthcheck

import (
	"fmt"
	"slices"
	"testing"
)

// §8.2 quorum sample: quorum 7, hysteresis 2, 10 × weight 1, alpha: down
// until 9 alive, up until fewer than 5.
func TestQuorumHysteresis(t *testing.T) {
	q := NewQuorum(QuorumConfig{Quorum: 7, Hysteresis: 2, VS: "[10.0.1.1]:tcp:80"}, 0)
	if _, ok := q.Update(0, true); ok || q.Up() {
		t.Fatal("alpha start without sorry server: a change")
	}
	var log []string
	step := func(sum int64) {
		if c, ok := q.Update(sum, false); ok {
			log = append(log, fmt.Sprint(sum, ": ", c.Msgs))
		}
	}
	for sum := int64(1); sum <= 10; sum++ {
		step(sum)
	}
	for sum := int64(9); sum >= 0; sum-- {
		step(sum)
	}
	want := []string{
		"9: [Gained quorum 7+2=9 <= 9 for VS [10.0.1.1]:tcp:80]",
		"4: [Lost quorum 7-2=5 > 4 for VS [10.0.1.1]:tcp:80]",
	}
	if !slices.Equal(log, want) {
		t.Errorf("got %q\nwant %q", log, want)
	}
}

// §8.2 sorry server sample: quorum 1; all real servers down → they are
// removed and the sorry server added; one back → the sorry server goes and
// the alive real servers return.
func TestQuorumSorryServer(t *testing.T) {
	cfg := QuorumConfig{Quorum: 1, VS: "[10.10.10.2]:tcp:1358", SorryServer: "[192.168.200.200]:tcp:1358"}
	q := NewQuorum(cfg, 0) // computed before any real server is alive
	c, ok := q.Update(2, true)
	if !ok || !c.Up || c.RemoveSorry || !slices.Equal(c.Msgs, []string{"Gained quorum 1+0=1 <= 2 for VS [10.10.10.2]:tcp:1358"}) {
		t.Fatalf("start-up: %+v %v", c, ok)
	}
	if _, ok := q.Update(1, false); ok {
		t.Fatal("change at 1 of quorum 1")
	}
	c, ok = q.Update(0, false)
	if !ok || c.Up || !c.RemoveAlive || !c.AddSorry || !q.SorryActive() || q.PoolWritable() {
		t.Fatalf("all down: %+v", c)
	}
	if want := []string{
		"Lost quorum 1-0=1 > 0 for VS [10.10.10.2]:tcp:1358",
		"Adding sorry server [192.168.200.200]:tcp:1358 to VS [10.10.10.2]:tcp:1358",
		"Removing alive servers from the pool for VS [10.10.10.2]:tcp:1358",
	}; !slices.Equal(c.Msgs, want) {
		t.Errorf("loss: %q\nwant %q", c.Msgs, want)
	}
	c, ok = q.Update(1, false)
	if !ok || !c.Up || !c.RemoveSorry || !c.AddAlive || q.SorryActive() || !q.PoolWritable() {
		t.Fatalf("one back: %+v", c)
	}
	if want := []string{
		"Gained quorum 1+0=1 <= 1 for VS [10.10.10.2]:tcp:1358",
		"Removing sorry server [192.168.200.200]:tcp:1358 from VS [10.10.10.2]:tcp:1358",
		"Adding alive servers to the pool for VS [10.10.10.2]:tcp:1358",
	}; !slices.Equal(c.Msgs, want) {
		t.Errorf("gain: %q\nwant %q", c.Msgs, want)
	}
}

// With alpha and a sorry server, start-up adds the sorry server.
func TestQuorumStartDownWithSorry(t *testing.T) {
	cfg := QuorumConfig{Quorum: 1, VS: "[10.0.0.1]:tcp:80", SorryServer: "[10.0.0.9]:tcp:80", SorryInhibit: true}
	q := NewQuorum(cfg, 0)
	c, ok := q.Update(0, true)
	if want := []string{
		"Starting with quorum down 1-0=1 > 0 for VS [10.0.0.1]:tcp:80",
		"Enabling sorry server [10.0.0.9]:tcp:80 to VS [10.0.0.1]:tcp:80",
		"Removing alive servers from the pool for VS [10.0.0.1]:tcp:80",
	}; !ok || !c.AddSorry || !slices.Equal(c.Msgs, want) {
		t.Errorf("start: %+v\nwant %q", c, want)
	}
}

func TestClampQuorum(t *testing.T) {
	for _, tc := range []struct {
		q, h   uint32
		sum    int64
		wq, wh uint32
	}{
		{7, 2, 10, 7, 2},
		{20, 2, 10, 10, 2},
		{3, 5, 10, 3, 2},
		{1, 0, 0, 0, 0},
	} {
		if q, h := ClampQuorum(tc.q, tc.h, tc.sum); q != tc.wq || h != tc.wh {
			t.Errorf("ClampQuorum(%d, %d, %d) = %d, %d, want %d, %d", tc.q, tc.h, tc.sum, q, h, tc.wq, tc.wh)
		}
	}
}
