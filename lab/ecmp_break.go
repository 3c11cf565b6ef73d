package lab

import (
	"context"
	"fmt"
	"time"
)

// ecmpExerciseFlows is how many connections an ECMP exercise's failover
// keeps; ecmpExerciseWindow how long it waits for them to answer again.
const (
	ecmpExerciseFlows  = 90
	ecmpExerciseWindow = 10 * time.Second
)

// ecmpExercises are the ECMP break-it exercises.
var ecmpExercises = []*Exercise{
	{
		Name: "ecmp-sh-rr", Scenario: "ecmp",
		Title: "ECMP directors scheduling with rr instead of mh: a failover breaks the flows that move",
		Why:   ecmpShRRWhy,
		run:   runECMPShRR,
	},
	{
		Name: "ecmp-sloppy-off", Scenario: "ecmp",
		Title: "ECMP directors without sloppy_tcp: the flows that move to another director stall",
		Why:   ecmpSloppyOffWhy,
		run:   runECMPSloppyOff,
	},
}

const ecmpShRRWhy = "When a director leaves, the router moves its flows (and, with hash-threshold ECMP, some of the\n" +
	"survivors' flows too) to another director that never saw them. sloppy_tcp lets that director take the\n" +
	"mid-flow packet, but it must then pick the real server the flow already has: only a hash of the flow\n" +
	"that every director computes alike (mh, or sh) does. rr picks whoever is next: the wrong real server\n" +
	"has no such connection and answers with a RST."

const ecmpSloppyOffWhy = "IPVS creates a connection only from a SYN (ip_vs_in -> the protocol's conn_schedule: tcp_conn_schedule\n" +
	"schedules a non-SYN packet only with sloppy_tcp). A director that takes over a flow mid-way never saw its\n" +
	"SYN, so it drops every packet of it; the client retransmits until it gives up. mh would pick the right\n" +
	"real server, but without sloppy_tcp it is never asked."

// ecmpKill is a round's failure: SIGKILL of role's uvsd.
func (s *session) ecmpKill(role string) func() (string, error) {
	return func() (string, error) {
		i := s.uvsdProc(role)
		if i < 0 {
			return "", fmt.Errorf("ecmp: uvsd %s is not recorded in the state", role)
		}
		p := s.st.Procs[i]
		fmt.Fprintf(s.out, "[%s]# kill -9 %d    # uvsd\n", role, p.PID)
		return "kill -9 uvsd on " + role, killProc(p)
	}
}

// ecmpExerciseRounds runs the broken round, the fix and the fixed round.
func (s *session) ecmpExerciseRounds(ctx context.Context, res *BreakResult, why string, fix func() error) error {
	dead := ecmpDirectors[0].Role
	fmt.Fprintf(s.out, "\n== the symptom: %d long-lived connections, %s's uvsd killed\n", ecmpExerciseFlows, dead)
	broken, err := s.ecmpRound(ctx, dead, ecmpExerciseFlows, ecmpExerciseWindow, s.ecmpKill(dead))
	if err != nil {
		return err
	}
	res.ECMPBroken = broken
	res.Symptom = broken.Survived < broken.Flows
	res.SymptomText = fmt.Sprintf("%d of %d connections survived the failover (%d stalled, %d failed)",
		broken.Survived, broken.Flows, broken.Stalled, broken.Flows-broken.Survived-broken.Stalled)
	if res.Symptom {
		fmt.Fprintf(s.out, "symptom: %s\n", res.SymptomText)
	} else {
		fmt.Fprintf(s.out, "no symptom this time: %s\n", res.SymptomText)
	}
	fmt.Fprintf(s.out, "why:\n%s\n", indent(why, "  "))

	fmt.Fprintf(s.out, "\n== fix it\n")
	if err := fix(); err != nil {
		return err
	}
	if _, err := s.waitHops(ctx, len(ecmpDirectors)); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "\n== again: %d new long-lived connections, %s's uvsd killed\n", ecmpExerciseFlows, dead)
	fixed, err := s.ecmpRound(ctx, dead, ecmpExerciseFlows, ecmpExerciseWindow, s.ecmpKill(dead))
	if err != nil {
		return err
	}
	res.ECMPFixed = fixed
	res.Fixed = fixed.Survived == fixed.Flows
	if res.Fixed {
		fmt.Fprintf(s.out, "fixed: every connection survived the failover, each with its real server\n")
	} else {
		fmt.Fprintf(s.out, "NOT fixed: %d of %d connections survived\n", fixed.Survived, fixed.Flows)
	}
	return nil
}

// ecmpSched sets the scheduler of the VIP's service on every running
// director.
func (s *session) ecmpSched(ctx context.Context, sched ...string) error {
	for _, d := range ecmpDirectors {
		if i := s.uvsdProc(d.Role); i < 0 || !s.st.Procs[i].Alive() {
			continue
		}
		if _, err := s.ipvsadmOn(ctx, d.Role, true, append([]string{"-E", "-t", ecmpVIP + ":80", "-s"}, sched...)...); err != nil {
			return err
		}
	}
	return nil
}

func runECMPShRR(ctx context.Context, s *session, res *BreakResult) error {
	fmt.Fprintf(s.out, "\n== break it: rr instead of mh on every director\n")
	if err := s.ecmpSched(ctx, "rr"); err != nil {
		return err
	}
	return s.ecmpExerciseRounds(ctx, res, ecmpShRRWhy, func() error {
		s.note("dir1 comes back (its rules say mh); mh with mh-port again on the others")
		if err := s.restartDirector(ctx, ecmpDirectors[0].Role, true); err != nil {
			return err
		}
		return s.ecmpSched(ctx, "mh", "-b", "mh-port")
	})
}

func runECMPSloppyOff(ctx context.Context, s *session, res *BreakResult) error {
	fmt.Fprintf(s.out, "\n== break it: every director restarted without --sysctl sloppy_tcp=1\n")
	for _, d := range ecmpDirectors {
		if err := s.restartDirector(ctx, d.Role, false); err != nil {
			return err
		}
	}
	if _, err := s.waitHops(ctx, len(ecmpDirectors)); err != nil {
		return err
	}
	return s.ecmpExerciseRounds(ctx, res, ecmpSloppyOffWhy, func() error {
		s.note("every director restarted with --sysctl sloppy_tcp=1")
		for _, d := range ecmpDirectors {
			if err := s.restartDirector(ctx, d.Role, true); err != nil {
				return err
			}
		}
		return nil
	})
}
