package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/lab"
	"github.com/relaygate/relaygate/locate"
)

// switchLab brings up a lab of the test's own in which the PC sits behind
// the access switch and both switches answer SNMP and LLDP (the shared lab
// keeps its plain topology), and removes it when the test ends.
func switchLab(t *testing.T) *lab.Lab {
	t.Helper()
	needLab(t)
	dir := t.TempDir()
	// lldpd drops to its own user before it connects to snmpd's AgentX
	// socket in dir: t.TempDir's directories are private to root.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l, err := lab.UpWith(fmt.Sprintf("rgs%d", os.Getpid()%100000), dir, theLab.Bin, lab.Options{AccessSwitch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"core/snmpd.log", "access-2/snmpd.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, "switches", f))
				t.Logf("%s:\n%s", f, b)
			}
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

// pcTalks makes the PC send to its gateway over IPv4 and IPv6, so that the
// routing switch has its neighbour entries and the access switch its MAC.
func pcTalks(t *testing.T, l *lab.Lab) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, gw := range []string{"10.20.0.1", "2001:db8:20::1"} {
		if out, err := l.Run(ctx, "pc", "ping", "-c1", "-W2", gw); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
}

// macIndex is a MAC as the six sub-identifiers of an FDB table index.
func macIndex(t *testing.T, mac string) string {
	t.Helper()
	parts := strings.Split(mac, ":")
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 16, 8)
		if err != nil {
			t.Fatalf("MAC %q: %v", mac, err)
		}
		parts[i] = strconv.Itoa(int(n))
	}
	return strings.Join(parts, ".")
}

// addrIndex is an address as the InetAddressType.length.octets part of an
// IP-MIB ipNetToPhysicalTable index.
func addrIndex(addr string) string {
	a := netip.MustParseAddr(addr)
	typ := "1"
	if a.Is6() {
		typ = "2"
	}
	s := typ + "." + strconv.Itoa(a.BitLen()/8)
	for _, b := range a.AsSlice() {
		s += "." + strconv.Itoa(int(b))
	}
	return s
}

// walkUntil walks oid until check accepts the answer, for up to 15 s
// (lldpd sends every 2 s in the lab; the switches learn as frames pass).
func walkUntil(t *testing.T, l *lab.Lab, agent string, v3 bool, oid string, check func(map[string]string) error) map[string]string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		vals, err := l.SNMPWalk(ctx, "box", agent, v3, oid)
		cancel()
		if err == nil {
			err = check(vals)
		}
		if err == nil {
			return vals
		}
		if time.Now().After(deadline) {
			t.Fatalf("walk %s on %s (v3 %v): %v\n%v", oid, agent, v3, err, vals)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func has(keys ...string) func(map[string]string) error {
	return func(vals map[string]string) error {
		for _, k := range keys {
			if _, ok := vals[k]; !ok {
				return fmt.Errorf("no %s", k)
			}
		}
		return nil
	}
}

// ifIndexOf returns the ifIndex whose ifName is name, from an ifName walk.
func ifIndexOf(t *testing.T, ifNames map[string]string, name string) string {
	t.Helper()
	for k, v := range ifNames {
		if v == name {
			return k[strings.LastIndexByte(k, '.')+1:]
		}
	}
	t.Fatalf("no ifName %q in %v", name, ifNames)
	return ""
}

// lldpNeighbour returns the lldpRemSysName of the neighbour on local port
// ifIndex (lldpd numbers local ports by ifIndex), from a walk of
// lldpRemSysName (index TimeMark.LocalPortNum.Index).
func lldpNeighbour(vals map[string]string, ifIndex string) string {
	for k, v := range vals {
		idx := strings.Split(strings.TrimPrefix(k, ".1.0.8802.1.1.2.1.4.1.1.9."), ".")
		if len(idx) == 3 && idx[1] == ifIndex {
			return v
		}
	}
	return ""
}

const (
	oidIfName          = ".1.3.6.1.2.1.31.1.1.1.1"
	oidIfAlias         = ".1.3.6.1.2.1.31.1.1.1.18"
	oidNetToPhysAddr   = ".1.3.6.1.2.1.4.35.1.4"
	oidFdbPort         = ".1.3.6.1.2.1.17.4.3.1.2"
	oidBasePortIfIndex = ".1.3.6.1.2.1.17.1.4.1.2"
	oidQFdbPort        = ".1.3.6.1.2.1.17.7.1.2.2.1.2"
	oidLldpRemSysName  = ".1.0.8802.1.1.2.1.4.1.1.9"
)

// TestLabSwitches proves the lab's switches before the product asks them:
// from the appliance's namespace (its management port), over v2c and v3
// authPriv, the routing switch maps the PC's IPv4 and IPv6 addresses to
// its MAC, the access switch has that MAC on the PC's port with the port's
// name and description, and LLDP shows each switch on the other's uplink.
func TestLabSwitches(t *testing.T) {
	l := switchLab(t)
	pcTalks(t, l)
	mac := macIndex(t, lab.PCMAC)
	for _, v3 := range []bool{false, true} {
		t.Run(map[bool]string{false: "v2c", true: "v3"}[v3], func(t *testing.T) {
			coreNames := walkUntil(t, l, lab.CoreMgmt4, v3, oidIfName, has())
			pcSide := ifIndexOf(t, coreNames, lab.CoreDownlink)
			neigh := oidNetToPhysAddr + "." + pcSide + "."
			arp := walkUntil(t, l, lab.CoreMgmt4, v3, oidNetToPhysAddr, has(neigh+addrIndex(lab.PC4), neigh+addrIndex(lab.PC6)))
			for _, addr := range []string{lab.PC4, lab.PC6} {
				if got := arp[neigh+addrIndex(addr)]; got != lab.PCMAC {
					t.Errorf("core ipNetToPhysicalPhysAddress of %s = %q, want %q", addr, got, lab.PCMAC)
				}
			}

			fdb := walkUntil(t, l, lab.AccessMgmt4, v3, oidFdbPort, has(oidFdbPort+"."+mac))
			port := fdb[oidFdbPort+"."+mac]
			qfdb := walkUntil(t, l, lab.AccessMgmt4, v3, oidQFdbPort, has(oidQFdbPort+".1."+mac))
			if got := qfdb[oidQFdbPort+".1."+mac]; got != port {
				t.Errorf("access dot1qTpFdbPort of the PC's MAC = %s, dot1dTpFdbPort %s", got, port)
			}
			ports := walkUntil(t, l, lab.AccessMgmt4, v3, oidBasePortIfIndex, has(oidBasePortIfIndex+"."+port))
			ifIndex := ports[oidBasePortIfIndex+"."+port]
			names := walkUntil(t, l, lab.AccessMgmt4, v3, oidIfName, has(oidIfName+"."+ifIndex))
			if got := names[oidIfName+"."+ifIndex]; got != lab.PCPort {
				t.Errorf("access: the PC's MAC is on bridge port %s, ifIndex %s, ifName %q; want ifName %q", port, ifIndex, got, lab.PCPort)
			}
			aliases := walkUntil(t, l, lab.AccessMgmt4, v3, oidIfAlias, has(oidIfAlias+"."+ifIndex))
			if got := aliases[oidIfAlias+"."+ifIndex]; got != lab.PCPortAlias {
				t.Errorf("access ifAlias of %s = %q, want %q", lab.PCPort, got, lab.PCPortAlias)
			}

			uplink := ifIndexOf(t, names, lab.AccessUplink)
			want := map[string]struct{ agent, port, neighbour string }{
				"core":   {lab.CoreMgmt4, pcSide, lab.AccessSwitch},
				"access": {lab.AccessMgmt4, uplink, lab.CoreSwitch},
			}
			for sw, w := range want {
				walkUntil(t, l, w.agent, v3, oidLldpRemSysName, func(vals map[string]string) error {
					if got := lldpNeighbour(vals, w.port); got != w.neighbour {
						return fmt.Errorf("%s: LLDP neighbour on ifIndex %s = %q, want %q", sw, w.port, got, w.neighbour)
					}
					return nil
				})
			}
			if got := lldpNeighbour(walkUntil(t, l, lab.AccessMgmt4, v3, oidLldpRemSysName, has()), ifIndex); got != "" {
				t.Errorf("access: LLDP neighbour %q on the PC's port, want none (it is an edge port)", got)
			}
		})
	}
}

// hostLocation is the location object of GET /api/v1/hosts/{addr}.
type hostLocation struct {
	locate.Location
	LastAttempt time.Time `json:"last_attempt"`
	LastStatus  string    `json:"last_status"`
	LastError   string    `json:"last_error"`
}

// waitLocation polls GET /api/v1/hosts/{addr} until done accepts the
// host's location, for up to 30 s, and returns it.
func waitLocation(t *testing.T, a *lab.Appliance, addr string, done func(hostLocation) bool) hostLocation {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		var resp struct {
			Location *hostLocation `json:"location"`
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := a.API(ctx, "GET", "/api/v1/hosts/"+addr, nil, &resp)
		cancel()
		switch {
		case err != nil:
			last = err.Error()
		case resp.Location == nil:
			last = "no location"
		case done(*resp.Location):
			return *resp.Location
		default:
			last = fmt.Sprintf("%+v", *resp.Location)
		}
		if time.Now().After(deadline) {
			t.Fatalf("location of %s not as wanted after 30s; last: %s", addr, last)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// blockPC sends direct SMTP from the PC to the MX's address of addr's
// family, expects it refused and its blocked event recorded, and returns
// how long the PC waited for the refusal.
func blockPC(t *testing.T, l *lab.Lab, a *lab.Appliance, addr string) time.Duration {
	t.Helper()
	mx := lab.MX4
	if strings.Contains(addr, ":") {
		mx = lab.MX6
	}
	from := uniqueSender(t, "bot")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	start := time.Now()
	out, err := l.Swaks(ctx, "pc", server(mx), from, "victim@remote.example")
	took := time.Since(start)
	if err == nil || !strings.Contains(out, "554") {
		t.Fatalf("swaks from the PC (%s) to %s: want a 554 refusal, got err %v\n%s", addr, mx, err, out)
	}
	waitEvent(t, a, event.Blocked, addr, from)
	return took
}

// whereView is what the host card's Where section shows.
type whereView struct {
	Switch string   `json:"switch"`
	Port   string   `json:"port"`
	Desc   string   `json:"desc"`
	MAC    string   `json:"mac"`
	Same   []string `json:"same"`
}

// checkWhereInBrowser opens the IPv4 host card in the browser and reads
// its Where section: the access switch, the PC's port and description, its
// MAC, and the PC's IPv6 address as the same machine. The screenshot is the
// one the documentation shows.
func checkWhereInBrowser(t *testing.T, l *lab.Lab, a *lab.Appliance) {
	t.Helper()
	b := openBrowser(t, l, a)
	b.do("host card", chromedp.Navigate(b.base+"/hosts/"+lab.PC4+"?lang=en"), chromedp.WaitVisible(chromedp.CSS(`#where-switch`)))
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[whereView](`(() => {
		const q = s => { const e = document.querySelector(s); return e ? e.textContent.trim() : ''; };
		return {switch: q('#where-switch'), port: q('#where-port'), desc: q('#where-desc'), mac: q('#where-mac'),
			same: Array.from(document.querySelectorAll('#same-machine a')).map(a => a.textContent.trim())};
	})()`))
	if err != nil {
		t.Fatalf("read the host card: %v", err)
	}
	b.shot("host-where")
	want := whereView{Switch: lab.AccessSwitch, Port: lab.PCPort, Desc: lab.PCPortAlias, MAC: lab.PCMAC, Same: []string{lab.PC6}}
	if fmt.Sprint(v) != fmt.Sprint(want) {
		t.Errorf("host card of %s shows Where %+v, want %+v", lab.PC4, v, want)
	}
	for _, m := range b.console() {
		t.Errorf("browser console: %s", m)
	}
}

// TestLocateHost blocks the PC in the switch lab, over IPv4 and IPv6, and
// expects the host card to name the access switch, the PC's port and its
// description, and the PC's MAC, asked over v2c and over v3 authPriv; and
// a switch that refuses the appliance's community to delay no refusal and
// to show as a failed lookup naming it.
func TestLocateHost(t *testing.T) {
	l := switchLab(t)
	pcTalks(t, l)
	for _, version := range []string{"2c", "3"} {
		t.Run("v"+version, func(t *testing.T) {
			a := startApplianceIn(t, l, "enforce", lab.LocateConfig(version, ""))
			for _, addr := range []string{lab.PC4, lab.PC6} {
				blockPC(t, l, a, addr)
				loc := waitLocation(t, a, addr, func(loc hostLocation) bool { return loc.Status == locate.Found })
				want := map[string][2]string{
					"switch":           {loc.Switch, lab.AccessSwitch},
					"port":             {loc.Port, lab.PCPort},
					"port_description": {loc.PortDescription, lab.PCPortAlias},
					"mac":              {loc.MAC, lab.PCMAC},
				}
				for field, gw := range want {
					if gw[0] != gw[1] {
						t.Errorf("location of %s: %s = %q, want %q (%+v)", addr, field, gw[0], gw[1], loc)
					}
				}
				if loc.SeenAt.IsZero() {
					t.Errorf("location of %s: seen_at is zero (%+v)", addr, loc)
				}
			}
			if version == "2c" {
				checkWhereInBrowser(t, l, a)
			}
		})
	}
	t.Run("wrong community", func(t *testing.T) {
		cfg := fmt.Sprintf("locate:\n  timeout: 1s\n  switches:\n    - name: %s\n      address: %s\n      version: \"2c\"\n      community: not-%s\n",
			lab.CoreSwitch, lab.CoreMgmt4, lab.SNMPCommunity)
		a := startApplianceIn(t, l, "enforce", cfg)
		// A refusal takes well under a second in the lab; an SNMP timeout
		// on the data path would take at least the 1 s timeout.
		if took := blockPC(t, l, a, lab.PC4); took > 5*time.Second {
			t.Errorf("the PC waited %s for its refusal with an unanswering switch configured", took)
		}
		loc := waitLocation(t, a, lab.PC4, func(loc hostLocation) bool {
			return loc.Status == locate.Failed || loc.LastStatus == string(locate.Failed)
		})
		if msg := loc.Error + " " + loc.LastError; !strings.Contains(msg, lab.CoreSwitch) {
			t.Errorf("failed location of %s: error %q, last_error %q: want the switch's name %q", lab.PC4, loc.Error, loc.LastError, lab.CoreSwitch)
		}
	})
}
