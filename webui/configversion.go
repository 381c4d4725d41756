package webui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/config"
)

// configVersion is the running configuration's version, its strong
// ETag: an HMAC-SHA256 of the configuration's canonical YAML (secrets
// included, so that changing a secret is a new version) under a key kept
// in the store. Keyed, so that the ETag cannot be used to guess a weak
// SNMP community offline; stored, so that an ETag stays valid across
// restarts. Any change (PUT, a policy form, a restore, a SIGHUP reload)
// changes the configuration and so its version.
type configVersion struct {
	mu  sync.Mutex
	key []byte
	// write serialises PUT /api/v1/config's check of If-Match with its
	// apply, so that of two writers with the same version only one wins.
	write sync.Mutex
}

// configETagKey is the store setting that holds the ETag key (hex).
const configETagKey = "config_etag_key"

// etagKey returns the ETag key, created and stored on first use.
func (s *server) etagKey(ctx context.Context) ([]byte, error) {
	v := &s.cfgVersion
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.key != nil {
		return v.key, nil
	}
	stored, ok, err := s.admins.Setting(ctx, configETagKey)
	if err != nil {
		return nil, fmt.Errorf("read setting %s: %w", configETagKey, err)
	}
	if ok {
		if k, err := hex.DecodeString(stored); err == nil && len(k) == sha256.Size {
			v.key = k
			return k, nil
		}
	}
	k := make([]byte, sha256.Size)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("config ETag key: %w", err)
	}
	if err := s.admins.SetSetting(ctx, configETagKey, hex.EncodeToString(k)); err != nil {
		return nil, fmt.Errorf("write setting %s: %w", configETagKey, err)
	}
	v.key = k
	return k, nil
}

// configETag returns cfg's version as a quoted strong ETag.
func (s *server) configETag(ctx context.Context, cfg *config.Config) (string, error) {
	key, err := s.etagKey(ctx)
	if err != nil {
		return "", err
	}
	b, err := cfg.Marshal()
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return `"` + base64.RawURLEncoding.EncodeToString(m.Sum(nil)) + `"`, nil
}

// etagMatches reports whether an If-Match or If-None-Match header value
// (a list of ETags, or "*") names etag. Comparison is strong: a weak
// validator (W/"...") never matches.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || (t == etag && t != "") {
			return true
		}
	}
	return false
}

// setConfigETag sets the ETag header to cfg's version and returns it; on
// failure it answers 500 itself and returns "".
func (s *server) setConfigETag(c *gin.Context, cfg *config.Config) string {
	ctx, cancel := s.ctx(c)
	defer cancel()
	etag, err := s.configETag(ctx, cfg)
	if err != nil {
		s.internalError(c, "config ETag", err)
		return ""
	}
	c.Header("ETag", etag)
	return etag
}

// checkIfMatch answers 412 (and returns false) when the request's
// If-Match names another version than the running configuration's.
// Without If-Match, or with "*", any version is replaced, as before
// versions existed.
func (s *server) checkIfMatch(c *gin.Context, cur *config.Config) bool {
	h := c.GetHeader("If-Match")
	if h == "" {
		return true
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	etag, err := s.configETag(ctx, cur)
	if err != nil {
		s.internalError(c, "config ETag", err)
		return false
	}
	if etagMatches(h, etag) {
		return true
	}
	c.Header("ETag", etag)
	abortError(c, http.StatusPreconditionFailed,
		"the configuration changed since it was read (If-Match names an older version): GET it again, reapply your change and retry")
	return false
}
