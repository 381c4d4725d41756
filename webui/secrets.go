package webui

import (
	"slices"

	"github.com/relaygate/relaygate/config"
)

// SecretMask stands for a stored secret (a switch's SNMP community or v3
// passphrases) in what the API and the backup show. The secrets are
// write-only: a configuration sent back with the mask, or with the field
// empty, keeps the stored secret of the switch of the same name.
const SecretMask = config.SecretMask

// redactSecrets returns c with the switches' secrets masked; c is not
// changed.
func redactSecrets(c *config.Config) *config.Config {
	if c == nil || len(c.Locate.Switches) == 0 {
		return c
	}
	r := *c
	r.Locate.Switches = slices.Clone(c.Locate.Switches)
	for i := range r.Locate.Switches {
		sw := &r.Locate.Switches[i]
		for _, f := range []*string{&sw.Community, &sw.AuthPass, &sw.PrivPass} {
			if *f != "" {
				*f = SecretMask
			}
		}
	}
	return &r
}

// keepSecrets puts the stored secrets of cur into the switches of c that
// left them empty or masked, matched by name. A masked secret with no
// stored one becomes empty, for validation to name.
func keepSecrets(c, cur *config.Config) {
	for i := range c.Locate.Switches {
		sw := &c.Locate.Switches[i]
		var old config.Switch
		if cur != nil {
			if j := slices.IndexFunc(cur.Locate.Switches, func(o config.Switch) bool { return o.Name == sw.Name }); j >= 0 {
				old = cur.Locate.Switches[j]
			}
		}
		for _, f := range []struct{ nu, old *string }{
			{&sw.Community, &old.Community}, {&sw.AuthPass, &old.AuthPass}, {&sw.PrivPass, &old.PrivPass},
		} {
			if *f.nu == "" || *f.nu == SecretMask {
				*f.nu = *f.old
			}
		}
	}
}
