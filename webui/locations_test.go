package webui

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/locate"
)

// queueLocator stands for the daemon's location service: it records the
// addresses "locate now" asked for, or answers err.
type queueLocator struct {
	mu    sync.Mutex
	asked []netip.Addr
	err   error
}

func (q *queueLocator) LocateNow(addr netip.Addr) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.asked = append(q.asked, addr)
	return nil
}

var (
	pcV4 = netip.MustParseAddr("10.20.0.50")
	pcV6 = netip.MustParseAddr("2001:db8:20::50")
)

// locatedHarness records a blocked PC over IPv4 and IPv6 and another
// host, and stores where the switches found the PC (both addresses, one
// MAC).
func locatedHarness(t *testing.T) (Deps, *harness, *queueLocator) {
	t.Helper()
	d, h := testDeps(t)
	q := &queueLocator{}
	d.Locations, d.Locator = h.store, q
	ctx := context.Background()
	now := h.clock.Now().UTC().Truncate(time.Second)
	for _, a := range []netip.Addr{pcV4, pcV6, netip.MustParseAddr("10.20.0.60")} {
		h.store.Record(event.Event{Time: now, Kind: event.Blocked, Client: a, Code: 554})
	}
	if err := h.store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{pcV4, pcV6} {
		if err := h.store.SaveLocation(ctx, locate.Location{Addr: a, Status: locate.Found, MAC: "aa:bb:cc:dd:ee:ff", Vendor: "Dell Inc.",
			Switch: "access-2", Port: "Gi1/0/17", PortDescription: "3F room 12", VLAN: 20, SeenAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	// A later lookup that found nothing: the found location stays.
	if err := h.store.SaveLocation(ctx, locate.Location{Addr: pcV4, Status: locate.NotFound, SeenAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	return d, h, q
}

// TestHostLocationAPI: a host's card in the API has its location with the
// last attempt and its other address; the hosts list has a compact
// location, the MAC and the same-machine addresses per row.
func TestHostLocationAPI(t *testing.T) {
	d, h, _ := locatedHarness(t)
	h.router = NewRouter(d)

	w := h.do(t, "GET", "/api/v1/hosts/10.20.0.50", bearer, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET host = %d %s", w.Code, w.Body)
	}
	var card struct {
		Location    map[string]any `json:"location"`
		SameMachine []string       `json:"same_machine"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &card); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"status": "found", "mac": "aa:bb:cc:dd:ee:ff", "vendor": "Dell Inc.", "switch": "access-2",
		"port": "Gi1/0/17", "port_description": "3F room 12", "vlan": 20.0, "last_status": "not_found"} {
		if got := card.Location[k]; got != want {
			t.Errorf("location.%s = %v, want %v", k, got, want)
		}
	}
	for _, k := range []string{"last_attempt", "seen_at", "addr"} {
		if card.Location[k] == nil {
			t.Errorf("location.%s missing in %v", k, card.Location)
		}
	}
	if diff := cmp.Diff([]string{"2001:db8:20::50"}, card.SameMachine); diff != "" {
		t.Errorf("same_machine (-want +got):\n%s", diff)
	}

	w = h.do(t, "GET", "/api/v1/hosts", bearer, "")
	var list struct {
		Hosts []struct {
			Addr        string         `json:"addr"`
			MAC         string         `json:"mac"`
			SameMachine []string       `json:"same_machine"`
			Location    *LocationBrief `json:"location"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range list.Hosts {
		v := r.MAC + " " + strings.Join(r.SameMachine, ",")
		if r.Location != nil {
			v += " " + r.Location.Switch + " " + r.Location.Port + " '" + r.Location.PortDescription + "'"
		}
		got[r.Addr] = v
	}
	want := map[string]string{
		"10.20.0.50":      "aa:bb:cc:dd:ee:ff 2001:db8:20::50 access-2 Gi1/0/17 '3F room 12'",
		"2001:db8:20::50": "aa:bb:cc:dd:ee:ff 10.20.0.50 access-2 Gi1/0/17 '3F room 12'",
		"10.20.0.60":      " ",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hosts rows: mac same_machine location (-want +got):\n%s", diff)
	}

	// The enforce preview names where each host is.
	w = h.do(t, "GET", "/api/v1/mode-preview?mode=enforce", bearer, "")
	var prev modePreviewResponse
	if err := json.Unmarshal(w.Body.Bytes(), &prev); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(prev.Hosts, func(p PreviewHost) bool { return p.Addr == pcV4 })
	if i < 0 || prev.Hosts[i].Location == nil || prev.Hosts[i].Location.Port != "Gi1/0/17" {
		t.Errorf("mode preview = %+v, want 10.20.0.50 on Gi1/0/17", prev.Hosts)
	}
}

// TestHostLocationPages: the host card shows the Where section with the
// port, its description, the MAC and the other address, and a "Locate
// now" button; the Hosts page has the Where column; the preview page too.
func TestHostLocationPages(t *testing.T) {
	d, h, q := locatedHarness(t)
	b := h.adminBrowser(t, d)
	w := b.do("GET", "/hosts/10.20.0.50", nil, nil)
	body := w.Body.String()
	for _, want := range []string{`id="where"`, `<td id="where-switch">access-2</td>`, `<td id="where-port">Gi1/0/17</td>`,
		`<td id="where-desc">3F room 12</td>`, `<td id="where-mac">aa:bb:cc:dd:ee:ff</td>`, "Dell Inc.", "not_found",
		`<a href="/hosts/2001:db8:20::50">2001:db8:20::50</a>`, `action="/hosts/10.20.0.50/locate"`, `id="locate-now"`} {
		if !strings.Contains(body, want) {
			t.Errorf("host card lacks %q", want)
		}
	}
	w = b.post("/hosts/10.20.0.50/locate", nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/hosts/10.20.0.50?locate=queued#where" {
		t.Errorf("POST locate now = %d to %q", w.Code, w.Header().Get("Location"))
	}
	if diff := cmp.Diff([]netip.Addr{pcV4}, q.asked, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("lookups asked (-want +got):\n%s", diff)
	}
	if w := b.do("POST", "/hosts/10.20.0.50/locate", nil, nil); w.Code != http.StatusForbidden {
		t.Errorf("POST locate now without CSRF token = %d, want 403", w.Code)
	}
	if body := b.do("GET", "/hosts/10.20.0.50?locate=queued", nil, nil).Body.String(); !strings.Contains(body, `id="locate-result"`) {
		t.Error("host card after locate now lacks the result")
	}

	body = b.do("GET", "/hosts", nil, nil).Body.String()
	if !strings.Contains(body, "access-2 Gi1/0/17 <span class=\"small muted\">'3F room 12'</span>") {
		t.Errorf("hosts page lacks the Where column of 10.20.0.50:\n%s", body)
	}
	body = b.do("GET", "/policy/mode?to=enforce", nil, nil).Body.String()
	if !strings.Contains(body, "access-2 Gi1/0/17 '3F room 12'") {
		t.Error("enforce preview page lacks where 10.20.0.50 is")
	}
}

// TestLocateNowAPI: POST /api/v1/hosts/{addr}/locate answers 202 and
// queues the lookup, 409 when location is off, 503 when busy, 400 for a
// bad address.
func TestLocateNowAPI(t *testing.T) {
	d, h, q := locatedHarness(t)
	h.router = NewRouter(d)
	if w := h.do(t, "POST", "/api/v1/hosts/10.20.0.60/locate", bearer, ""); w.Code != http.StatusAccepted {
		t.Errorf("locate now = %d %s, want 202", w.Code, w.Body)
	}
	if len(q.asked) != 1 || q.asked[0] != netip.MustParseAddr("10.20.0.60") {
		t.Errorf("asked = %v, want [10.20.0.60]", q.asked)
	}
	if w := h.do(t, "POST", "/api/v1/hosts/nope/locate", bearer, ""); w.Code != http.StatusBadRequest {
		t.Errorf("locate now of a bad address = %d, want 400", w.Code)
	}
	q.err = ErrLocationOff
	if w := h.do(t, "POST", "/api/v1/hosts/10.20.0.60/locate", bearer, ""); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "locate.switches") {
		t.Errorf("locate now without switches = %d %s, want 409 naming locate.switches", w.Code, w.Body)
	}
	q.err = ErrLocateBusy
	if w := h.do(t, "POST", "/api/v1/hosts/10.20.0.60/locate", bearer, ""); w.Code != http.StatusServiceUnavailable {
		t.Errorf("locate now when busy = %d, want 503", w.Code)
	}
	d.Locator = nil
	h.router = NewRouter(d)
	if w := h.do(t, "POST", "/api/v1/hosts/10.20.0.60/locate", bearer, ""); w.Code != http.StatusConflict {
		t.Errorf("locate now with no locator = %d, want 409", w.Code)
	}
	if w := h.do(t, "POST", "/api/v1/hosts/10.20.0.60/locate", "", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("locate now without credentials = %d, want 401", w.Code)
	}
}

const switchesYAML = `
locate:
  switches:
    - name: core
      address: 10.0.0.1
      version: 2c
      community: s3cret-community
    - name: access-2
      address: 10.0.0.2
      version: "3"
      user: relaygate
      auth_pass: s3cret-auth-pass
      priv_pass: s3cret-priv-pass
`

// TestSwitchSecretsWriteOnly: GET /api/v1/config, the backup and the
// System page never show the switches' secrets; a configuration sent back
// with them masked or empty keeps the stored ones; ?secrets=1 includes
// them in the backup.
func TestSwitchSecretsWriteOnly(t *testing.T) {
	d, h := testDeps(t)
	h.config.cur = mustParse(t, testConfigYAML+switchesYAML)
	b := h.adminBrowser(t, d)
	secrets := []string{"s3cret-community", "s3cret-auth-pass", "s3cret-priv-pass"}
	noSecrets := func(what, body string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("%s shows the secret %q", what, s)
			}
		}
	}
	w := h.do(t, "GET", "/api/v1/config", bearer, "")
	noSecrets("GET /api/v1/config", w.Body.String())
	if !strings.Contains(w.Body.String(), SecretMask) {
		t.Errorf("GET /api/v1/config does not mask the secrets: %s", w.Body)
	}
	backup := h.do(t, "GET", "/api/v1/config/backup", bearer, "")
	noSecrets("GET /api/v1/config/backup", backup.Body.String())
	noSecrets("GET /system/backup", b.do("GET", "/system/backup", nil, nil).Body.String())
	noSecrets("GET /system", b.do("GET", "/system", nil, nil).Body.String())

	// The masked configuration sent back keeps the secrets.
	put := h.do(t, "PUT", "/api/v1/config", bearer, w.Body.String())
	if put.Code != http.StatusOK {
		t.Fatalf("PUT masked config = %d %s", put.Code, put.Body)
	}
	noSecrets("PUT /api/v1/config answer", put.Body.String())
	sw := h.config.Current().Locate.Switches
	if sw[0].Community != "s3cret-community" || sw[1].AuthPass != "s3cret-auth-pass" || sw[1].PrivPass != "s3cret-priv-pass" {
		t.Errorf("after PUT of the masked config: switches = %+v, want the stored secrets kept", sw)
	}
	// So does the masked backup restored, and a configuration with the
	// secrets left out; a new secret replaces the stored one.
	if w := h.do(t, "POST", "/api/v1/config/restore", bearer, backup.Body.String()); w.Code != http.StatusOK {
		t.Fatalf("restore masked backup = %d %s", w.Code, w.Body)
	}
	empty := strings.NewReplacer("      community: s3cret-community\n", "", "      priv_pass: s3cret-priv-pass\n", "",
		"s3cret-auth-pass", "new-auth-pass").Replace(testConfigYAML + switchesYAML)
	if w := h.do(t, "PUT", "/api/v1/config", bearer, empty); w.Code != http.StatusOK {
		t.Fatalf("PUT without secrets = %d %s", w.Code, w.Body)
	}
	sw = h.config.Current().Locate.Switches
	if sw[0].Community != "s3cret-community" || sw[1].AuthPass != "new-auth-pass" || sw[1].PrivPass != "s3cret-priv-pass" {
		t.Errorf("after PUT without secrets: switches = %+v, want community and priv_pass kept, auth_pass new", sw)
	}

	full := h.do(t, "GET", "/api/v1/config/backup?secrets=1", bearer, "").Body.String()
	if !strings.Contains(full, "s3cret-community") || !strings.Contains(full, "new-auth-pass") {
		t.Errorf("backup?secrets=1 lacks the secrets:\n%s", full)
	}
	if a := h.auditLast(t); a.Action != "config.backup" || !strings.Contains(a.Detail, "secrets") {
		t.Errorf("audit of the backup with secrets = %+v", a)
	}
}
