package lab

import (
	"strings"
	"testing"

	"github.com/uvs-lb/uvs/internal/netnstest"
)

// TestECMP runs the ecmp scenario: the router's route has a next hop per
// director, every director carries some of 1000 short connections, and
// the long-lived connections go on through the survivors when dir1's
// uvsd is killed and when dir2's cable is pulled. It logs the figures
// (spread, withdrawal times, survival) and asserts no timing.
func TestECMP(t *testing.T) {
	netnstest.RequireTool(t, "bird")
	netnstest.RequireTool(t, "birdc")
	tl := newTestLab(t)
	rep, err := tl.Run(testCtx(t), "ecmp", RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.ECMP
	if r == nil {
		t.Fatal("no ecmp report")
	}
	if got := strings.Join(r.NextHops, " "); got != "dir1 dir2 dir3" {
		t.Fatalf("the router's next hops %q, want dir1 dir2 dir3:\n%s", got, r.Route)
	}
	t.Logf("figure: spread of %d short connections: %s; real servers %v; errors %d, in no trace %d",
		r.Short, shareString(r.PerDirector, r.Short), r.PerServer, r.ShortErrors, r.Undecided)
	if r.ShortErrors > 0 {
		t.Errorf("%d of %d short connections failed", r.ShortErrors, r.Short)
	}
	for _, d := range ecmpDirectors {
		if r.PerDirector[d.Role] == 0 {
			t.Errorf("%s carried none of %d connections: %v", d.Role, r.Short, r.PerDirector)
		}
	}
	if r.PerServer["rs1"] == 0 || r.PerServer["rs2"] == 0 {
		t.Errorf("answers per real server %v, want both", r.PerServer)
	}
	for _, rd := range []*ECMPRound{r.Kill, r.LinkDown} {
		if rd == nil {
			t.Fatal("a failover round is missing")
		}
		t.Logf("figure: %s: route without it after %v; %d of %d connections survived (%.1f %%), %d picked up by another director "+
			"(%d of them survived), %d stalled; errors %v",
			rd.How, rd.Withdrawn, rd.Survived, rd.Flows, 100*rd.Share(), rd.Moved, rd.MovedSurvived, rd.Stalled, rd.Errors)
		if rd.PerDirector[rd.Director] == 0 {
			t.Errorf("%s: the failed director carried none of the connections: %v", rd.How, rd.PerDirector)
		}
		if rd.Moved == 0 {
			t.Errorf("%s: no connection was picked up by another director", rd.How)
		}
		if rd.Share() < 0.99 {
			t.Errorf("%s: %d of %d connections survived, want >= 99 %%: %v", rd.How, rd.Survived, rd.Flows, rd.Errors)
		}
	}
	if got := strings.Join(r.LinkDown.HopsAfter, " "); got != "dir3" {
		t.Errorf("after both failures the route goes via %q, want dir3", got)
	}
	out := tl.out.String()
	for _, want := range []string{"[router]# cat > ", "merge paths on;", "hold time 3;", "[router]# bird -f -c ",
		"[dir1]# uvsd --rules ", "--bgp-peer 10.0.0.200,as=65000,hold=3", "[dir1]# kill -9 ", "[switch]# ip link set p-dir2 down",
		"nexthop via 10.0.0.8", "-A -t 172.16.10.100:80 -s mh -b mh-port"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if nss := tl.namespaces(t); len(nss) != 0 {
		t.Fatalf("run left namespaces %v", nss)
	}
}

// TestECMPBreaks runs the ECMP break-it exercises: with rr, or without
// sloppy_tcp, some connections die when a director does; with mh and
// sloppy_tcp every one survives.
func TestECMPBreaks(t *testing.T) {
	netnstest.RequireTool(t, "bird")
	netnstest.RequireTool(t, "birdc")
	for _, name := range []string{"ecmp-sh-rr", "ecmp-sloppy-off"} {
		t.Run(name, func(t *testing.T) {
			tl := newTestLab(t)
			res, err := tl.Break(testCtx(t), name, false)
			if err != nil {
				t.Fatal(err)
			}
			b, f := res.ECMPBroken, res.ECMPFixed
			if b == nil || f == nil {
				t.Fatalf("rounds missing: broken %v fixed %v", b, f)
			}
			t.Logf("figure: %s broken: %d of %d survived (%d stalled), %d moved; fixed: %d of %d survived, %d moved",
				name, b.Survived, b.Flows, b.Stalled, b.Moved, f.Survived, f.Flows, f.Moved)
			if !res.Symptom {
				t.Errorf("no symptom: %s", res.SymptomText)
			}
			if !res.Fixed {
				t.Errorf("not fixed: %d of %d survived: %v", f.Survived, f.Flows, f.Errors)
			}
			if name == "ecmp-sloppy-off" && b.Stalled == 0 {
				t.Errorf("without sloppy_tcp no connection stalled: %+v", b)
			}
		})
	}
}

// TestECMPFullNAT runs ecmp-fullnat: the directors serve the VIP by
// FULLNAT, each from its own LAN address. The short connections spread
// and succeed (every reply comes back through its director); at each
// failover every connection the router keeps on a surviving director
// goes on, and the ones it moves to another director are counted: they
// cannot go on (the new director's local address and port are a
// connection the real server never saw), and the test asserts that too.
func TestECMPFullNAT(t *testing.T) {
	netnstest.RequireTool(t, "bird")
	netnstest.RequireTool(t, "birdc")
	tl := newTestLab(t)
	rep, err := tl.Run(testCtx(t), "ecmp-fullnat", RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.ECMP
	if r == nil || !r.FullNAT {
		t.Fatalf("no FULLNAT ecmp report: %+v", r)
	}
	if got := strings.Join(r.NextHops, " "); got != "dir1 dir2 dir3" {
		t.Fatalf("the router's next hops %q, want dir1 dir2 dir3:\n%s", got, r.Route)
	}
	t.Logf("figure: spread of %d short connections: %s; real servers %v; errors %d, in no trace %d",
		r.Short, shareString(r.PerDirector, r.Short), r.PerServer, r.ShortErrors, r.Undecided)
	if r.ShortErrors > 0 {
		t.Errorf("%d of %d short connections failed", r.ShortErrors, r.Short)
	}
	for _, d := range ecmpDirectors {
		if r.PerDirector[d.Role] == 0 {
			t.Errorf("%s carried none of %d connections: %v", d.Role, r.Short, r.PerDirector)
		}
	}
	if r.PerServer["rs1"] == 0 || r.PerServer["rs2"] == 0 {
		t.Errorf("answers per real server %v, want both", r.PerServer)
	}
	for _, rd := range []*ECMPRound{r.Kill, r.LinkDown} {
		if rd == nil {
			t.Fatal("a failover round is missing")
		}
		t.Logf("figure: %s: route without it after %v; %d of %d connections survived (%.1f %%); kept on a survivor %d of %d survived; "+
			"moved %d of %d survived; %d stalled; errors %v",
			rd.How, rd.Withdrawn, rd.Survived, rd.Flows, 100*rd.Share(), rd.StayedSurvived, rd.Stayed, rd.MovedSurvived, rd.Moved, rd.Stalled, rd.Errors)
		if rd.PerDirector[rd.Director] == 0 {
			t.Errorf("%s: the failed director carried none of the connections: %v", rd.How, rd.PerDirector)
		}
		if rd.Moved == 0 || rd.Stayed == 0 {
			t.Errorf("%s: %d connections moved, %d kept on a survivor; want some of each", rd.How, rd.Moved, rd.Stayed)
		}
		if rd.StayedSurvived != rd.Stayed {
			t.Errorf("%s: %d of the %d connections kept on a surviving director survived, want all: %v",
				rd.How, rd.StayedSurvived, rd.Stayed, rd.Errors)
		}
		if rd.MovedSurvived != 0 {
			t.Errorf("%s: %d of %d moved FULLNAT connections survived; the scenario and lab/README.md say none can",
				rd.How, rd.MovedSurvived, rd.Moved)
		}
	}
	if got := strings.Join(r.LinkDown.HopsAfter, " "); got != "dir3" {
		t.Errorf("after both failures the route goes via %q, want dir3", got)
	}
	out := tl.out.String()
	for _, want := range []string{"-P -t 172.16.10.100:80 -z 10.0.0.8",
		"-a -t 172.16.10.100:80 -r 10.0.0.7:80 -b -w 1", "[dir1]# kill -9 ", "[switch]# ip link set p-dir2 down",
		"FULLNAT cannot keep a moved flow"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if nss := tl.namespaces(t); len(nss) != 0 {
		t.Fatalf("run left namespaces %v", nss)
	}
}
