package webui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/mgmtnet"
)

// systemRoutes registers status, reboot, the management address and the
// HTTPS certificate.
func (s *server) systemRoutes(ui, api *gin.RouterGroup) {
	ui.GET("/system", s.pageSystem)
	ui.POST("/system/reboot", s.postReboot)
	ui.POST("/system/certificate", s.postCertificate)
	ui.POST("/system/network", s.postNetwork)
	api.GET("/status", s.getStatus)
	api.POST("/system/reboot", s.apiReboot)
	api.POST("/system/certificate", s.apiCertificate)
	api.GET("/system/network", s.getNetwork)
	api.PUT("/system/network", s.putNetwork)
}

// getStatus answers GET /api/v1/status.
func (s *server) getStatus(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.storeTimeout)
	defer cancel()
	c.JSON(http.StatusOK, s.statusNow(ctx))
}

// apiReboot answers POST /api/v1/system/reboot.
func (s *server) apiReboot(c *gin.Context) {
	if s.system == nil {
		abortError(c, http.StatusNotImplemented, "reboot is not available on this installation (it comes with the appliance image)")
		return
	}
	s.audit(c, "", "system.reboot", "reboot requested")
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.system.Reboot(ctx); err != nil {
		s.internalError(c, "reboot", err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"rebooting": true})
}

// readUpload reads one uploaded file of at most limit bytes.
func readUpload(fh *multipart.FileHeader, limit int64) ([]byte, error) {
	if fh.Size > limit {
		return nil, fmt.Errorf("%s larger than %d bytes", fh.Filename, limit)
	}
	f, err := fh.Open()
	if err != nil {
		return nil, fmt.Errorf("read upload: %w", err)
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// maxPEMBytes bounds an uploaded certificate chain or key.
const maxPEMBytes = 64 << 10

// postCertificate replaces the HTTPS certificate (multipart fields "cert"
// and "key", PEM).
func (s *server) postCertificate(c *gin.Context) {
	if s.certs == nil {
		s.renderMessage(c, http.StatusNotImplemented, "cert_none")
		return
	}
	var pems [2][]byte
	var err error
	for i, field := range []string{"cert", "key"} {
		var fh *multipart.FileHeader
		if fh, err = c.FormFile(field); err != nil {
			err = fmt.Errorf("no file uploaded (field %q)", field)
			break
		}
		if pems[i], err = readUpload(fh, maxPEMBytes); err != nil {
			break
		}
	}
	var fp string
	if err == nil {
		fp, err = s.certs.replace(pems[0], pems[1], s.now())
	}
	if err != nil {
		s.systemPage(c, http.StatusBadRequest, gin.H{"CertError": err.Error()})
		return
	}
	s.audit(c, "", "certificate.replace", "HTTPS certificate replaced, SHA-256 "+fp)
	s.log.Info("HTTPS certificate replaced", "cert_sha256", fp, "actor", c.GetString(actorKey))
	c.Redirect(http.StatusSeeOther, "/system?cert=1")
}

// apiCertificate answers POST /api/v1/system/certificate
// {"cert_pem": "...", "key_pem": "..."} with the new certificate's info.
func (s *server) apiCertificate(c *gin.Context) {
	if s.certs == nil {
		abortError(c, http.StatusNotImplemented, "the certificate cannot be replaced here")
		return
	}
	var req struct {
		CertPEM string `json:"cert_pem"`
		KeyPEM  string `json:"key_pem"`
	}
	if err := json.NewDecoder(io.LimitReader(c.Request.Body, 3*maxPEMBytes)).Decode(&req); err != nil {
		abortError(c, http.StatusBadRequest, fmt.Sprintf("invalid JSON body (want {\"cert_pem\": \"...\", \"key_pem\": \"...\"}): %v", err))
		return
	}
	fp, err := s.certs.replace([]byte(req.CertPEM), []byte(req.KeyPEM), s.now())
	if err != nil {
		abortError(c, http.StatusBadRequest, err.Error())
		return
	}
	s.audit(c, "", "certificate.replace", "HTTPS certificate replaced, SHA-256 "+fp)
	c.JSON(http.StatusOK, s.certs.info())
}

// statusNow is the status with uptime filled in and no nil lists.
func (s *server) statusNow(ctx context.Context) Status {
	st := s.status.Status(ctx)
	if !st.Started.IsZero() {
		st.Started = st.Started.UTC()
		up := max(s.now().Sub(st.Started), 0)
		st.Uptime = up.Truncate(time.Second).String()
		st.UptimeSeconds = up.Seconds()
	}
	if st.Ports == nil {
		st.Ports = []PortStatus{}
	}
	if st.Counters == nil {
		st.Counters = map[string]uint64{}
	}
	return st
}

// maxNetworkBytes bounds a PUT /api/v1/system/network body.
const maxNetworkBytes = 4096

// networkErrorBody is a refused change: the one-line error and the
// message per field (mode, address, gateway, dns).
type networkErrorBody struct {
	Error  string            `json:"error"`
	Fields map[string]string `json:"fields,omitempty"`
}

// getNetwork answers GET /api/v1/system/network with the management
// port's addressing: {"mode": "dhcp"} or {"mode": "static", "address":
// "192.0.2.10/24", "gateway": "192.0.2.1", "dns": "192.0.2.53"}.
func (s *server) getNetwork(c *gin.Context) {
	if s.network == nil {
		abortError(c, http.StatusNotImplemented, "management addressing is not available on this installation")
		return
	}
	st, err := s.network.Load()
	if err != nil {
		s.internalError(c, "load management network", err)
		return
	}
	c.JSON(http.StatusOK, st)
}

// putNetwork answers PUT /api/v1/system/network: the body is the JSON of
// GET; 200 with the settings, "applied" and a message; 400 with "fields"
// naming each bad field (nothing is saved then).
func (s *server) putNetwork(c *gin.Context) {
	if s.network == nil {
		abortError(c, http.StatusNotImplemented, "management addressing is not available on this installation")
		return
	}
	var req mgmtnet.Settings
	if !decodeJSONBody(c, &req, maxNetworkBytes,
		`{"mode": "dhcp"} or {"mode": "static", "address": "192.0.2.10/24", "gateway": "192.0.2.1", "dns": "192.0.2.53"}`) {
		return
	}
	res, fields, err := s.saveNetwork(c, req)
	switch {
	case fields != nil:
		c.AbortWithStatusJSON(http.StatusBadRequest, networkErrorBody{Error: fields.Error(), Fields: fields})
	case err != nil:
		s.internalError(c, "save management network", err)
	default:
		c.JSON(http.StatusOK, res)
	}
}

// saveNetwork validates and saves; fields is set for invalid settings.
// Every saved change goes to the audit log.
func (s *server) saveNetwork(c *gin.Context, req mgmtnet.Settings) (*mgmtnet.Result, mgmtnet.FieldErrors, error) {
	ctx, cancel := s.ctx(c)
	defer cancel()
	res, err := s.network.Save(ctx, req)
	var fe mgmtnet.FieldErrors
	if errors.As(err, &fe) {
		return nil, fe, nil
	}
	if err != nil {
		return nil, nil, err
	}
	s.audit(c, "", "system.network", fmt.Sprintf("management address: %s (%s)", res.Settings, res.Message))
	return res, nil, nil
}

// networkForm is the System page's management address form as entered.
type networkForm struct {
	Mode, Address, Gateway, DNS string
}

// postNetwork takes the System page's management address form.
func (s *server) postNetwork(c *gin.Context) {
	if s.network == nil {
		s.systemPage(c, http.StatusNotImplemented, gin.H{"NetworkError": s.msg(c, "net_none")})
		return
	}
	f := networkForm{Mode: c.PostForm("mode"), Address: c.PostForm("address"), Gateway: c.PostForm("gateway"), DNS: c.PostForm("dns")}
	req := mgmtnet.Settings{Mode: mgmtnet.Mode(f.Mode)}
	if strings.TrimSpace(f.Mode) != string(mgmtnet.DHCP) {
		// The form keeps the static fields while DHCP is chosen: ignore them then.
		req.Address, req.Gateway, req.DNS = f.Address, f.Gateway, f.DNS
	}
	res, fields, err := s.saveNetwork(c, req)
	switch {
	case fields != nil:
		s.systemPage(c, http.StatusBadRequest, gin.H{"NetworkForm": f, "NetworkErrors": map[string]string(fields), "NetworkError": fields.Error()})
	case err != nil:
		s.log.Error("save management network", "err", err)
		s.systemPage(c, http.StatusInternalServerError, gin.H{"NetworkForm": f, "NetworkError": err.Error()})
	case res.Applied:
		c.Redirect(http.StatusSeeOther, "/system?network=applied")
	default:
		c.Redirect(http.StatusSeeOther, "/system?network=saved")
	}
}

// pageSystem shows interfaces, version, uptime, backup and restore,
// reboot and the firmware placeholder.
func (s *server) pageSystem(c *gin.Context) {
	s.systemPage(c, http.StatusOK, nil)
}

// systemPage renders the system page with status; extra carries a
// form's error ("RestoreError", "CertError", "UpdateError", "NetworkError")
// and what the network form held ("NetworkForm", "NetworkErrors").
func (s *server) systemPage(c *gin.Context, status int, extra gin.H) {
	ctx, cancel := s.ctx(c)
	defer cancel()
	p := s.newPage(c, "system.html", "system")
	switch {
	case c.Query("restored") == "1":
		p.Notice = p.M["restored"]
	case c.Query("cert") == "1":
		p.Notice = p.M["cert_replaced"]
	case c.Query("updating") == "1":
		p.Notice = p.M["firmware_started"]
	case c.Query("network") == "applied":
		p.Notice = p.M["net_applied"]
	case c.Query("network") == "saved":
		p.Notice = p.M["net_saved"]
	case c.Query("switch") == "added":
		p.Notice = p.M["nb_added"]
	}
	data := gin.H{"Status": s.statusNow(ctx), "Config": redactSecrets(s.config.Current()), "CanReboot": s.system != nil,
		"CanUpdate": s.update != nil, "RestoreError": "", "CertError": "", "UpdateError": "", "Cert": nil,
		"CanNetwork": s.network != nil, "NetworkError": "", "NetworkErrors": map[string]string{}, "NetworkForm": networkForm{Mode: "dhcp"}}
	data["Neighbors"], data["NeighborError"] = s.neighborRows(s.config.Current()), ""
	data["Export"] = s.exportRows()
	if s.certs != nil {
		data["Cert"] = s.certs.info()
	}
	if s.network != nil {
		// The form starts from the settings in force.
		if st, err := s.network.Load(); err != nil {
			s.log.Error("load management network", "err", err)
		} else {
			data["NetworkForm"] = networkForm{Mode: string(st.Mode), Address: st.Address, Gateway: st.Gateway, DNS: st.DNS}
		}
	}
	for k, v := range extra {
		data[k] = v
		if e, ok := v.(string); ok && e != "" {
			p.Error = p.M["err_form"]
		}
	}
	p.Data = data
	s.render(c, status, "system.html", p)
}

// postReboot reboots the appliance when a System is wired.
func (s *server) postReboot(c *gin.Context) {
	if s.system == nil {
		s.renderMessage(c, http.StatusNotImplemented, "reboot_none")
		return
	}
	s.audit(c, "", "system.reboot", "reboot requested")
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.system.Reboot(ctx); err != nil {
		s.pageError(c, http.StatusInternalServerError, "reboot", err)
		return
	}
	p := s.newPage(c, "message.html", "system")
	p.Notice = p.M["rebooting"]
	s.render(c, http.StatusAccepted, "message.html", p)
}
