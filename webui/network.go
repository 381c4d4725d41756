package webui

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/mgmtnet"
)

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
