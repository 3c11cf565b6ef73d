package realserver

import (
	"fmt"
	"slices"
)

// drUp configures o.VIPs for direct routing on o.Dev. Running it again is
// harmless: VIPs already recorded are skipped and the sysctls' original
// values are kept from the first run.
func drUp(env Env, o *Options) error {
	h, err := openHost(env, o.StateBase)
	if err != nil {
		return err
	}
	defer h.close()
	for _, vip := range o.VIPs {
		if h.st.HasDR(vip) {
			fmt.Fprintf(env.Stdout, "dr: %s already on %s\n", vip, o.Dev)
			continue
		}
		existed, err := addVIP(o.Dev, vip)
		if err != nil {
			return err
		}
		h.st.DR = append(h.st.DR, DRVIP{VIP: vip, Dev: o.Dev, Existed: existed})
		if err := h.save(); err != nil {
			return err
		}
		if existed {
			fmt.Fprintf(env.Stdout, "dr: %s was already on %s (left there on down)\n", vip, o.Dev)
		} else {
			fmt.Fprintf(env.Stdout, "dr: %s added to %s\n", vip, o.Dev)
		}
	}
	if !o.NoSysctl && anyV4(o.VIPs) {
		err := ApplySysctls(h.sys, DRSysctls(o.Dev), h.st.Saved)
		if serr := h.save(); err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("dr up: %w", err)
		}
		fmt.Fprintf(env.Stdout, "dr: arp_ignore=1 arp_announce=2 on all and %s\n", o.Dev)
	}
	return nil
}

// drDown removes o.VIPs (all DR VIPs when none is given) and, when nothing
// else is configured, restores the sysctls.
func drDown(env Env, o *Options) error {
	h, err := openHost(env, o.StateBase)
	if err != nil {
		return err
	}
	defer h.close()
	want := o.VIPs
	if len(want) == 0 {
		for _, d := range h.st.DR {
			want = append(want, d.VIP)
		}
	}
	for _, vip := range want {
		i := slices.IndexFunc(h.st.DR, func(d DRVIP) bool { return d.VIP == vip })
		if i < 0 {
			fmt.Fprintf(env.Stdout, "dr: %s not configured\n", vip)
			continue
		}
		d := h.st.DR[i]
		if !d.Existed {
			if err := delVIP(d.Dev, d.VIP); err != nil {
				return err
			}
		}
		h.st.DR = slices.Delete(h.st.DR, i, i+1)
		if err := h.save(); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "dr: %s removed from %s\n", d.VIP, d.Dev)
	}
	err = h.restoreIfEmpty()
	if serr := h.save(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("dr down: %w", err)
	}
	return nil
}
