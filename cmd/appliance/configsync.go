package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/relaygate/relaygate/internal/atomicfile"
)

// remote is a box's API as config pull and push reach it.
type remote struct {
	url, token string
	client     *http.Client
}

// newRemote checks the TLS options (at most one of caFile, insecure and
// fingerprint "sha256:AA:BB:..." as the System page shows it) and returns
// a client for the box at url.
func newRemote(url, token, caFile, fingerprint string, insecure bool) (*remote, error) {
	if url == "" || token == "" {
		return nil, errUsage
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case fingerprint != "":
		want, err := hex.DecodeString(strings.ReplaceAll(strings.TrimPrefix(strings.ToLower(fingerprint), "sha256:"), ":", ""))
		if err != nil || len(want) != sha256.Size {
			return nil, fmt.Errorf("--fingerprint %q: want sha256: and 32 hex bytes", fingerprint)
		}
		// Pinned: the certificate is the one named, whoever signed it.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no server certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if !bytes.Equal(got[:], want) {
				return fmt.Errorf("server certificate sha256 %X does not match --fingerprint", got)
			}
			return nil
		}
	case caFile != "":
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate", caFile)
		}
		tc.RootCAs = pool
	case insecure:
		tc.InsecureSkipVerify = true
	}
	return &remote{url: strings.TrimSuffix(url, "/"), token: token,
		client: &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{TLSClientConfig: tc}}}, nil
}

// do sends one request and returns the status, the body and the ETag.
func (r *remote) do(ctx context.Context, method, path string, body []byte, header map[string]string) (int, []byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, "", fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, nil, "", fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, nil, "", fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return resp.StatusCode, b, resp.Header.Get("ETag"), nil
}

// apiError renders a non-2xx answer with the API's error message.
func apiError(method, path string, code int, body []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, code, e.Error)
	}
	return fmt.Errorf("%s %s: HTTP %d: %s", method, path, code, bytes.TrimSpace(body))
}

// configPull writes the box's configuration as YAML (secrets masked) to
// out, or stdout when out is empty; with out, its version goes to
// out+".etag" for config push.
func configPull(ctx context.Context, r *remote, out string, stdout io.Writer) error {
	const path = "/api/v1/config/backup"
	code, body, etag, err := r.do(ctx, "GET", path, nil, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return apiError("GET", path, code, body)
	}
	if out == "" {
		_, err := stdout.Write(body)
		return err
	}
	if err := atomicfile.Write(out, body, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := atomicfile.Write(out+".etag", []byte(etag+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s.etag: %w", out, err)
	}
	fmt.Fprintf(stdout, "pulled %s (version %s)\n", out, etag)
	return nil
}

// configPush sends file as the box's configuration. The version it
// replaces is ifMatch, or the one config pull stored in file+".etag";
// the box answers 412 when it changed since, and nothing changes then.
// With neither, the push replaces whatever runs.
func configPush(ctx context.Context, r *remote, file, ifMatch string, stdout io.Writer) error {
	const path = "/api/v1/config"
	body, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if ifMatch == "" {
		if b, err := os.ReadFile(file + ".etag"); err == nil {
			ifMatch = strings.TrimSpace(string(b))
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read %s.etag: %w", file, err)
		}
	}
	h := map[string]string{"Content-Type": "application/yaml"}
	if ifMatch != "" {
		h["If-Match"] = ifMatch
	}
	code, resp, etag, err := r.do(ctx, "PUT", path, body, h)
	if err != nil {
		return err
	}
	switch code {
	case http.StatusOK:
	case http.StatusPreconditionFailed:
		return fmt.Errorf("the configuration on the box changed since version %s was pulled: pull again, reapply your change and push (%w)",
			ifMatch, apiError("PUT", path, code, resp))
	default:
		return apiError("PUT", path, code, resp)
	}
	// The next push builds on this version.
	if err := atomicfile.Write(file+".etag", []byte(etag+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s.etag: %w", file, err)
	}
	fmt.Fprintf(stdout, "pushed %s (version %s)\n", file, etag)
	return nil
}
