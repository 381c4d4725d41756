package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaygate/relaygate/reputation"
)

type fakeReputation struct {
	mu   sync.Mutex
	snap reputation.Snapshot
	runs int
}

func (f *fakeReputation) Snapshot() reputation.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeReputation) RunOnce(ctx context.Context) reputation.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs++
	return f.snap
}

type fakeAlerts struct {
	mu       sync.Mutex
	channels []string
	err      error
}

func (f *fakeAlerts) Test(ctx context.Context, ch string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.channels = append(f.channels, ch)
	return f.err
}

func reputationHarness(t *testing.T, running bool) (*harness, *fakeReputation, *fakeAlerts) {
	t.Helper()
	d, h := testDeps(t)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	fr := &fakeReputation{snap: reputation.Snapshot{
		CheckedAt: now,
		DNSBL: []reputation.Result{
			{Address: netip.MustParseAddr("198.51.100.25"), Zone: "zen.spamhaus.org", Status: reputation.Listed, Code: "127.0.0.4",
				Meaning: "XBL: exploited host (CBL)", Reason: "see check.spamhaus.org", Removal: "https://check.spamhaus.org/", CheckedAt: now},
			{Address: netip.MustParseAddr("198.51.100.25"), Zone: "bl.spamcop.net", Status: reputation.Clean, CheckedAt: now},
		},
		SPF: []reputation.SPFResult{{Relay: "mail-relay", Domain: "corp.example", Address: netip.MustParseAddr("198.51.100.25"),
			Result: "fail", Warning: "SPF of corp.example does not authorise 198.51.100.25"}},
		RelayTests: []reputation.RelayTest{{Relay: "old-relay", Address: "10.10.0.26:25", Open: true,
			Results: []reputation.ProbeResult{{From: "relaytest@x.example", To: "victim%x.example@relay", Reply: "250 2.1.5 Ok", Accepted: true}}}},
		Summary: reputation.SnapshotStats{Listed: 1, Clean: 1, SPFFailing: 1, OpenRelays: 1},
	}}
	fa := &fakeAlerts{}
	if running {
		d.Reputation, d.Alerts = fr, fa
	}
	h.router = NewRouter(d)
	return h, fr, fa
}

func TestReputationAPI(t *testing.T) {
	h, fr, fa := reputationHarness(t, true)
	bearer := "Bearer " + goodToken

	if w := h.do(t, "GET", "/api/v1/reputation", "", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("GET without a token = %d; want 401", w.Code)
	}
	w := h.do(t, "GET", "/api/v1/reputation", bearer, "")
	var snap reputation.Snapshot
	if err := json.Unmarshal(w.Body.Bytes(), &snap); err != nil || w.Code != 200 {
		t.Fatalf("GET /api/v1/reputation = %d %s", w.Code, w.Body)
	}
	if len(snap.DNSBL) != 2 || snap.DNSBL[0].Status != reputation.Listed || snap.DNSBL[0].Reason == "" || snap.DNSBL[0].CheckedAt.IsZero() {
		t.Errorf("snapshot = %+v", snap.DNSBL)
	}
	if w := h.do(t, "POST", "/api/v1/reputation/check", bearer, ""); w.Code != 200 || fr.runs != 1 {
		t.Errorf("POST check = %d, runs %d; want 200, 1", w.Code, fr.runs)
	}
	for _, tc := range []struct {
		channel string
		err     error
		code    int
	}{
		{"pager", nil, 400}, {"", nil, 400}, {"webhook", nil, 200}, {"syslog", errors.New("dial udp: refused"), 502},
	} {
		fa.err = tc.err
		w := h.do(t, "POST", "/api/v1/alerts/test?channel="+tc.channel, bearer, "")
		if w.Code != tc.code {
			t.Errorf("alert test %q = %d %s; want %d", tc.channel, w.Code, w.Body, tc.code)
		}
	}
	if strings.Join(fa.channels, ",") != "webhook,syslog" {
		t.Errorf("channels tested = %v; want only the valid ones", fa.channels)
	}

	h2, _, _ := reputationHarness(t, false)
	if w := h2.do(t, "GET", "/api/v1/reputation", bearer, ""); w.Code != http.StatusNotImplemented {
		t.Errorf("GET without a watcher = %d; want 501", w.Code)
	}
}

func TestReputationPage(t *testing.T) {
	h, fr, fa := reputationHarness(t, true)
	h.addAdmin(t)
	b := h.browser(t)
	if w := b.login(adminUser, adminPass); w.Code != http.StatusSeeOther {
		t.Fatalf("login = %d", w.Code)
	}
	w := b.do("GET", "/reputation", nil, nil)
	for _, want := range []string{"zen.spamhaus.org", "127.0.0.4", "XBL: exploited host", "https://check.spamhaus.org/",
		"does not authorise", "old-relay", "victim%x.example@relay", `href="/reputation" aria-current="page"`} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("GET /reputation lacks %q", want)
		}
	}
	// State changes need the CSRF token.
	if w := b.do("POST", "/reputation/check", url.Values{}, nil); w.Code != http.StatusForbidden || fr.runs != 0 {
		t.Errorf("POST /reputation/check without CSRF = %d, runs %d; want 403, 0", w.Code, fr.runs)
	}
	if w := b.post("/reputation/check", nil); w.Code != 200 || fr.runs != 1 {
		t.Errorf("POST /reputation/check = %d, runs %d; want 200, 1", w.Code, fr.runs)
	}
	if w := b.post("/reputation/alerts/test", url.Values{"channel": {"carrier-pigeon"}}); w.Code != 400 || len(fa.channels) != 0 {
		t.Errorf("bad channel = %d, tested %v", w.Code, fa.channels)
	}
	if w := b.post("/reputation/alerts/test", url.Values{"channel": {"email"}}); w.Code != 200 || len(fa.channels) != 1 {
		t.Errorf("email test = %d, tested %v", w.Code, fa.channels)
	}
	// Japanese.
	if w := b.do("GET", "/reputation?lang=ja", nil, nil); !strings.Contains(w.Body.String(), "レピュテーション") {
		t.Errorf("Japanese page lacks its title")
	}
}

func TestUpdateRoute(t *testing.T) {
	d, h := testDeps(t)
	h.router = NewRouter(d)
	bearer := "Bearer " + goodToken
	if w := h.do(t, "POST", "/api/v1/system/update", bearer, "bundle"); w.Code != http.StatusNotImplemented {
		t.Errorf("update without an updater = %d; want 501", w.Code)
	}
	var got int64
	d.Update = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got = n
		w.WriteHeader(http.StatusAccepted)
	})
	h.router = NewRouter(d)
	big := strings.Repeat("x", 3<<20) // larger than any other body may be
	if w := h.do(t, "POST", "/api/v1/system/update", bearer, big); w.Code != http.StatusAccepted || got != int64(len(big)) {
		t.Errorf("update = %d, body %d; want 202 and the whole bundle", w.Code, got)
	}
	if w := h.do(t, "POST", "/api/v1/system/update", "", "x"); w.Code != http.StatusUnauthorized {
		t.Errorf("update without a token = %d; want 401", w.Code)
	}
	if w := h.do(t, "PUT", "/api/v1/config", bearer, big); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("a large config = %d; want 413 still", w.Code)
	}
}

// uploadBundle posts the System page's firmware form.
func uploadBundle(b *browser, sum, content string) *httptest.ResponseRecorder {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField(csrfField, b.csrf)
	mw.WriteField("sha256", sum)
	mw.WriteField("password", adminPass)
	fw, _ := mw.CreateFormFile("bundle", "relaygate-2-amd64.update.tar.gz")
	io.WriteString(fw, content)
	mw.Close()
	return postFirmware(b, &buf, mw.FormDataContentType())
}

// postFirmware posts body to the System page's firmware form.
func postFirmware(b *browser, body io.Reader, contentType string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/system/update", body)
	req.RemoteAddr = b.remote
	req.Header.Set("Content-Type", contentType)
	req.AddCookie(&http.Cookie{Name: SessionCookie, Value: b.cookie})
	w := httptest.NewRecorder()
	b.h.router.ServeHTTP(w, req)
	return w
}

// updaterBrowser logs an administrator in to a router whose firmware
// updater is update.
func updaterBrowser(t *testing.T, update http.HandlerFunc) *browser {
	t.Helper()
	d, h := testDeps(t)
	d.Update = update
	return h.adminBrowser(t, d)
}

func TestFirmwareUploadForm(t *testing.T) {
	var gotSum string
	var gotLen int
	b := updaterBrowser(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		gotSum, gotLen = r.URL.Query().Get("sha256"), len(body)
		if string(body) == "broken" {
			http.Error(w, `{"error":"checksum mismatch"}`, http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	if w := b.do("GET", "/system", nil, nil); !strings.Contains(w.Body.String(), `action="/system/update"`) {
		t.Fatalf("the System page has no firmware form")
	}
	sum := strings.Repeat("ab", 32)
	bundle := strings.Repeat("x", 2<<20) // larger than other forms may be
	if w := uploadBundle(b, sum, bundle); w.Code != http.StatusSeeOther || gotSum != sum || gotLen != len(bundle) {
		t.Errorf("upload = %d, sum %q, %d octets; want 303 with the whole bundle", w.Code, gotSum, gotLen)
	}
	gotLen = 0
	if w := uploadBundle(b, "nothex", bundle); w.Code != http.StatusBadRequest || gotLen != 0 || !strings.Contains(w.Body.String(), "sha256") {
		t.Errorf("bad checksum field = %d, updater saw %d octets; want 400 and no call", w.Code, gotLen)
	}
	if w := uploadBundle(b, sum, "broken"); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "checksum mismatch") {
		t.Errorf("updater refusal = %d; want 400 with its reason on the page", w.Code)
	}
	// Without the CSRF token nothing reaches the updater.
	gotLen = 0
	b.csrf = "wrong"
	if w := uploadBundle(b, sum, bundle); w.Code != http.StatusForbidden || gotLen != 0 {
		t.Errorf("upload without CSRF = %d; want 403", w.Code)
	}
}

// TestFirmwareUploadStreams: the form's bundle reaches the updater while
// it is still being uploaded (nothing spools the whole file first), and
// the fields the updater depends on must come before the file.
func TestFirmwareUploadStreams(t *testing.T) {
	reached := make(chan struct{})
	var got int64
	var calls int
	b := updaterBrowser(t, func(w http.ResponseWriter, r *http.Request) {
		calls++
		var first [1]byte
		n, err := io.ReadFull(r.Body, first[:])
		close(reached)
		rest, _ := io.Copy(io.Discard, r.Body)
		got = int64(n) + rest
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	post := func(body io.Reader, contentType string) *httptest.ResponseRecorder {
		return postFirmware(b, body, contentType)
	}
	sum := strings.Repeat("cd", 32)
	const chunk = 256 << 10

	// The browser's order: token, checksum, password, file. The second half of the
	// file is sent only once the updater has read the first bytes.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	streamed := make(chan bool, 1)
	go func() {
		mw.WriteField(csrfField, b.csrf)
		mw.WriteField("sha256", sum)
		mw.WriteField("password", adminPass)
		fw, _ := mw.CreateFormFile("bundle", "relaygate-2-amd64.update.tar.gz")
		fw.Write(bytes.Repeat([]byte("a"), chunk))
		select {
		case <-reached:
			streamed <- true
		case <-time.After(10 * time.Second):
			streamed <- false
		}
		fw.Write(bytes.Repeat([]byte("b"), chunk))
		mw.Close()
		pw.Close()
	}()
	w := post(pr, mw.FormDataContentType())
	if !<-streamed {
		t.Error("the updater was not reached while the bundle was still being uploaded: the form is spooled before it is handed on")
	}
	if w.Code != http.StatusSeeOther || got != 2*chunk {
		t.Errorf("upload = %d, updater read %d octets; want 303 and %d", w.Code, got, 2*chunk)
	}

	// The file before its checksum, or before the token: refused before the
	// updater is called.
	for _, tt := range []struct {
		name   string
		fields []string // in order; "bundle" is the file
		code   int
		want   string
	}{
		{"file before checksum", []string{csrfField, "password", "bundle", "sha256"}, http.StatusBadRequest, "sent before the file"},
		{"file before token", []string{"sha256", "password", "bundle", csrfField}, http.StatusForbidden, "CSRF"},
		{"file before password", []string{csrfField, "sha256", "bundle", "password"}, http.StatusForbidden, "password again"},
		{"no file", []string{csrfField, "sha256", "password"}, http.StatusBadRequest, "no file uploaded"},
	} {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for _, f := range tt.fields {
			switch f {
			case csrfField:
				mw.WriteField(f, b.csrf)
			case "sha256":
				mw.WriteField(f, sum)
			case "password":
				mw.WriteField(f, adminPass)
			case "bundle":
				fw, _ := mw.CreateFormFile("bundle", "b.tar.gz")
				io.WriteString(fw, "bundle")
			}
		}
		mw.Close()
		calls = 0
		w := post(&buf, mw.FormDataContentType())
		if w.Code != tt.code || calls != 0 || !strings.Contains(w.Body.String(), tt.want) {
			t.Errorf("%s: %d, updater called %d times; want %d mentioning %q", tt.name, w.Code, calls, tt.code, tt.want)
		}
	}
	if w := post(strings.NewReader("sha256="+sum), "application/x-www-form-urlencoded"); w.Code != http.StatusBadRequest || calls != 0 {
		t.Errorf("a form without a file part = %d; want 400", w.Code)
	}
}
