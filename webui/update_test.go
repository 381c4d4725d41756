package webui

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestUpdateOutlivesReadTimeout: a firmware bundle takes longer to upload
// than the server's ReadTimeout allows ordinary requests (a 140 MiB bundle
// into a slow box); the update endpoint lifts the deadline, over HTTP/1.1
// and HTTP/2.
func TestUpdateOutlivesReadTimeout(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		d, h := testDeps(t)
		var got int
		d.Update = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			got = int(n)
			w.WriteHeader(http.StatusOK)
		})
		h.router = NewRouter(d)
		srv := httptest.NewUnstartedServer(h.router)
		srv.Config.ReadTimeout = 300 * time.Millisecond
		srv.EnableHTTP2 = h2
		srv.StartTLS()
		client := srv.Client()
		if h2 {
			client.Transport.(*http.Transport).ForceAttemptHTTP2 = true
		}
		client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}
		// The body trickles in over a second: 10 chunks, 100 ms apart.
		pr, pw := io.Pipe()
		go func() {
			for i := 0; i < 10; i++ {
				time.Sleep(100 * time.Millisecond)
				pw.Write([]byte(strings.Repeat("x", 1000)))
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/system/update?sha256=00", pr)
		req.Header.Set("Authorization", bearer)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || got != 10000 || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
			t.Errorf("h2=%v: %s %d %s, handler read %d bytes", h2, resp.Proto, resp.StatusCode, body, got)
		}
		srv.Close()
	}
}
