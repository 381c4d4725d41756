package webui

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/store"
)

// updateRoutes registers the firmware update.
func (s *server) updateRoutes(ui, api *gin.RouterGroup) {
	ui.POST("/system/update", s.postUpdate)
	api.GET("/system/update", s.apiUpdate)
	api.POST("/system/update", s.apiUpdate)
}

// apiUpdate hands the firmware update API to the appliance's updater. An
// install with a session needs the administrator's password again, in
// the X-Relaygate-Password header (the body is the bundle); one with a
// token needs an admin token (requireAuth), which has no password to give
// (docs/threat-model.md).
func (s *server) apiUpdate(c *gin.Context) {
	if s.update == nil {
		abortError(c, http.StatusNotImplemented, "firmware update is not available on this installation (it comes with the appliance image)")
		return
	}
	if c.Request.Method == http.MethodPost {
		if _, byToken := requestToken(c); !byToken {
			if f := s.reauth(c, "system.update", c.GetHeader(reauthHeader)); f != nil {
				s.abortReauth(c, f)
				return
			}
		}
		s.allowLongUpload(c)
		s.audit(c, "", "system.update", "firmware bundle uploaded")
	}
	s.update.ServeHTTP(c.Writer, c.Request)
}

// statusRecorder keeps what the updater answered, to show it on the page.
type statusRecorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (r *statusRecorder) Header() http.Header { return r.header }

func (r *statusRecorder) WriteHeader(code int) { r.code = code }

func (r *statusRecorder) Write(b []byte) (int, error) { return r.body.Write(b) }

// postUpdate takes a bundle from the System page's form and streams it to
// the updater as POST /api/v1/system/update?sha256= would, without holding
// it in memory or in a temporary file. The form's fields arrive in their
// order on the page: the CSRF token, the checksum, the administrator's
// password, then the file; the token is checked (streamedForm), the
// password (re-authentication) and the checksum validated before the
// first byte of the file is read.
func (s *server) postUpdate(c *gin.Context) {
	show := func(status int, msg string) { s.systemPage(c, status, gin.H{"UpdateError": msg}) }
	se := c.MustGet(sessionKey).(*store.Session)
	tok := c.GetHeader(csrfHeader)
	if s.update == nil {
		if !csrfOK(c, se) {
			s.renderMessage(c, http.StatusForbidden, "err_csrf")
			return
		}
		show(http.StatusNotImplemented, s.msg(c, "firmware_help"))
		return
	}
	s.allowLongUpload(c)
	mr, err := c.Request.MultipartReader()
	if err != nil {
		show(http.StatusBadRequest, fmt.Sprintf("not a file upload form: %v", err))
		return
	}
	var sum, password string
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			show(http.StatusBadRequest, "no file uploaded (field \"bundle\")")
			return
		}
		if err != nil {
			show(http.StatusBadRequest, fmt.Sprintf("read upload: %v", err))
			return
		}
		switch part.FormName() {
		case csrfField:
			if tok == "" {
				tok, err = smallField(part)
			}
		case "sha256":
			sum, err = smallField(part)
			sum = strings.ToLower(strings.TrimSpace(sum))
		case "password":
			password, err = smallField(part)
		case "bundle":
			if !csrfTokenOK(c.Request, se, tok) {
				s.renderMessage(c, http.StatusForbidden, "err_csrf")
				return
			}
			if f := s.reauth(c, "system.update", password); f != nil {
				show(f.status, f.message(s.catalog[pickLang(c)]))
				return
			}
			if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
				show(http.StatusBadRequest, "sha256: want the 64 hex digits of the bundle's .sha256 file, sent before the file")
				return
			}
			s.streamBundle(c, part, sum, show)
			return
		default:
			_, err = io.Copy(io.Discard, io.LimitReader(part, maxFieldBytes))
		}
		if err != nil {
			show(http.StatusBadRequest, fmt.Sprintf("read field %q: %v", part.FormName(), err))
			return
		}
	}
}

// maxFieldBytes bounds a text field of the firmware form.
const maxFieldBytes = 4 << 10

// smallField reads a text field of at most maxFieldBytes.
func smallField(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxFieldBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxFieldBytes {
		return "", fmt.Errorf("longer than %d bytes", maxFieldBytes)
	}
	return string(b), nil
}

// streamBundle hands the bundle part to the updater and shows its answer.
func (s *server) streamBundle(c *gin.Context, part *multipart.Part, sum string, show func(int, string)) {
	req, err := http.NewRequestWithContext(c.Request.Context(), http.MethodPost, updatePath+"?sha256="+sum, part)
	if err != nil {
		show(http.StatusInternalServerError, err.Error())
		return
	}
	req.ContentLength = -1
	s.audit(c, "", "system.update", fmt.Sprintf("firmware bundle %q uploaded from the System page", part.FileName()))
	rec := &statusRecorder{header: http.Header{}, code: http.StatusOK}
	s.update.ServeHTTP(rec, req)
	if rec.code/100 != 2 {
		show(http.StatusBadRequest, strings.TrimSpace(rec.body.String()))
		return
	}
	c.Redirect(http.StatusSeeOther, "/system?updating=1")
}

// updateTimeout bounds reading and applying a firmware bundle: hundreds of
// MiB streamed to the slot partition, on a slow box or link. The server's
// ReadTimeout and WriteTimeout are for ordinary requests.
const updateTimeout = 30 * time.Minute

// allowLongUpload lifts the connection's read and write deadlines for this
// request (HTTP/1.1 and HTTP/2 alike) to updateTimeout from now.
func (s *server) allowLongUpload(c *gin.Context) {
	rc := http.NewResponseController(c.Writer)
	deadline := time.Now().Add(updateTimeout)
	if err := errors.Join(rc.SetReadDeadline(deadline), rc.SetWriteDeadline(deadline)); err != nil &&
		!errors.Is(err, http.ErrNotSupported) {
		s.log.Warn("extend deadlines for a firmware upload", "err", err)
	}
}

const (
	updatePath     = "/api/v1/system/update"
	maxBundleBytes = 2 << 30
)
