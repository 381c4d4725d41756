package reputation

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// API serves the reputation endpoints (mounted by the web UI under its
// authentication):
//
//	GET  /api/v1/reputation        the latest snapshot (per address and zone:
//	                               status listed/clean/error, code, TXT reason,
//	                               checked-at; SPF per relay; open-relay tests)
//	POST /api/v1/reputation/check  run every check now and return the snapshot
//	POST /api/v1/alerts/test?channel=email|syslog|webhook
//	                               send a test alert on one channel
type API struct {
	Watcher *Watcher
	Alerter *Alerter
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// Snapshot answers GET /api/v1/reputation.
func (a *API) Snapshot(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.Watcher.Snapshot())
}

// Check answers POST /api/v1/reputation/check.
func (a *API) Check(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Minute)
	defer cancel()
	writeJSON(w, http.StatusOK, a.Watcher.RunOnce(ctx))
}

// TestAlert answers POST /api/v1/alerts/test?channel=...
func (a *API) TestAlert(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("channel")
	switch ch {
	case ChannelEmail, ChannelSyslog, ChannelWebhook:
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `channel: want email, syslog or webhook, got "` + ch + `"`})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := a.Alerter.Test(ctx, ch); err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "sent", "channel": ch})
}
