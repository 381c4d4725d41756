package lab

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// The switches of a lab brought up with Options.AccessSwitch (see
// scripts/lab.sh): the routing switch CoreSwitch and the access switch
// AccessSwitch, a Linux bridge between the PC and the routing switch. Both
// answer SNMP on the management network the appliance's management port
// is on.
const (
	CoreSwitch   = "core"
	CoreMgmt4    = "10.255.0.11"
	AccessSwitch = "access-2"
	AccessMgmt4  = "10.255.0.12"

	// PCMAC is the PC's MAC (a Dell OUI).
	PCMAC = "00:14:22:20:00:50"
	// PCPort is the access switch's port toward the PC (its ifName), and
	// PCPortAlias its description (ifAlias).
	PCPort      = "gi1-0-12"
	PCPortAlias = "3F room 12"
	// AccessUplink is the access switch's port toward the routing switch,
	// CoreDownlink the routing switch's port toward the access switch.
	AccessUplink = "gi1-0-48"
	CoreDownlink = "sw-pc"

	// The switches' read-only SNMP credentials: a v2c community and a v3
	// authPriv user (SHA-256, AES).
	SNMPCommunity = "lab-public"
	SNMPUser      = "labv3"
	SNMPAuthPass  = "lab-auth-secret"
	SNMPPrivPass  = "lab-priv-secret"
)

// LocateConfig is the locate: block of the appliance configuration that
// asks both switches over SNMP version ("2c" or "3"); community, when not
// empty, replaces the v2c community. It is the one scripts/lab-config.sh
// writes for the demo.
func LocateConfig(version, community string) string {
	out, err := exec.Command("bash", "-c", `. "$1" && lab_locate_config "$2" "$3"`, "lab-config",
		filepath.Join(Root(), "scripts", "lab-config.sh"), version, community).Output()
	if err != nil {
		panic(fmt.Sprintf("scripts/lab-config.sh: %v", err))
	}
	return string(out)
}

// SNMPWalk walks oid on the agent at addr from host's namespace with
// net-snmp's snmpwalk, over v2c or (v3 true) v3 authPriv with the lab's
// credentials. It returns numeric OIDs (with a leading dot) and values:
// strings unquoted, hex strings as lower-case "aa:bb:..", numbers as text.
func (l *Lab) SNMPWalk(ctx context.Context, host, addr string, v3 bool, oid string) (map[string]string, error) {
	args := []string{"snmpwalk", "-m", "", "-On", "-Oe", "-t", "2", "-r", "1"}
	if v3 {
		args = append(args, "-v3", "-l", "authPriv", "-u", SNMPUser, "-a", "SHA-256", "-A", SNMPAuthPass,
			"-x", "AES", "-X", SNMPPrivPass)
	} else {
		args = append(args, "-v2c", "-c", SNMPCommunity)
	}
	out, err := l.Run(ctx, host, append(args, addr, oid)...)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	vals := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, " = ")
		if !ok {
			continue
		}
		if typ, val, ok := strings.Cut(v, ": "); ok {
			switch typ {
			case "Hex-STRING":
				v = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(val), " ", ":"))
			case "STRING":
				v = strings.Trim(val, `"`)
			default:
				v = val
			}
		} else {
			v = strings.Trim(v, `"`)
		}
		vals[k] = v
	}
	return vals, nil
}
