package update

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// MaxBundleBytes bounds an uploaded bundle (two 512 MiB root slots are the
// most a root file system can be; kernel images are ~20 MiB each).
const MaxBundleBytes = 640 << 20

// Handler serves the update API; the caller mounts it behind its
// authentication, e.g. at /api/v1/system/update:
//
//	GET  → Status as JSON
//	POST → the request body is the bundle, signed by a key the image
//	       trusts and newer than the running image (a downgrade is never
//	       accepted here: only `appliance update apply --force-downgrade`
//	       on the console can). Its SHA-256, when given as the query
//	       parameter sha256= or the X-Bundle-SHA256 header, is checked too.
//	       200 with Result, then reboot (when reboot is not nil and
//	       ?reboot=0 is not given) into the trial boot; 400 for a bad,
//	       unsigned or older bundle, 409 while another update runs.
func (u *Updater) Handler(reboot func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			st, err := u.Status()
			if err != nil {
				writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, st)
		case http.MethodPost:
			want := r.URL.Query().Get("sha256")
			if want == "" {
				want = r.Header.Get("X-Bundle-SHA256")
			}
			// Accept "HEX  FILE" as found in the .sha256 file, too.
			if f := strings.Fields(want); len(f) > 0 {
				want = f[0]
			}
			body := http.MaxBytesReader(w, r.Body, MaxBundleBytes)
			res, err := u.Apply(r.Context(), body, want)
			switch {
			case errors.Is(err, ErrBusy):
				writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
				return
			case err != nil:
				u.logger().Warn("update refused", "err", err)
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			doReboot := reboot != nil && r.URL.Query().Get("reboot") != "0"
			writeJSON(w, http.StatusOK, struct {
				*Result
				Reboot bool `json:"reboot"`
			}{res, doReboot})
			if doReboot {
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
				if err := reboot(); err != nil {
					u.logger().Error("reboot after update", "err", err)
				}
			}
		default:
			w.Header().Set("Allow", "GET, POST")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
		}
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
