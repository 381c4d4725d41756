package webui

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/config"
	"github.com/relaygate/relaygate/neighbor"
)

// Neighbors is what the bridge ports hear over LLDP and CDP.
// *neighbor.Table implements it. Optional: without it the API answers an
// empty list and the System page says nothing was heard.
type Neighbors interface {
	// Neighbors returns the live neighbours, inside port first.
	Neighbors() []neighbor.Neighbor
}

var _ Neighbors = (*neighbor.Table)(nil)

// neighborRoutes registers the LLDP/CDP neighbours and the System page's
// "use as the first switch to query" form.
func (s *server) neighborRoutes(ui, api *gin.RouterGroup) {
	api.GET("/neighbors", s.getNeighbors)
	ui.POST("/system/neighbors/switch", s.postNeighborSwitch)
}

// neighborsNow is the live neighbours, never nil.
func (s *server) neighborsNow() []neighbor.Neighbor {
	if s.neighbors == nil {
		return []neighbor.Neighbor{}
	}
	if ns := s.neighbors.Neighbors(); ns != nil {
		return ns
	}
	return []neighbor.Neighbor{}
}

// getNeighbors answers GET /api/v1/neighbors with the live neighbours, one
// per bridge port.
func (s *server) getNeighbors(c *gin.Context) {
	c.JSON(http.StatusOK, s.neighborsNow())
}

// neighborRow is one neighbour on the System page: Proposed is the
// management address to offer as locate.switches' entry, "" when a
// configured switch already has one of its addresses (or it sent none).
type neighborRow struct {
	neighbor.Neighbor
	Proposed string
}

// neighborRows is the System page's neighbour table.
func (s *server) neighborRows(cfg *config.Config) []neighborRow {
	var rows []neighborRow
	for _, n := range s.neighborsNow() {
		r := neighborRow{Neighbor: n}
		if len(n.ManagementAddresses) > 0 && !switchConfigured(cfg, n.ManagementAddresses) {
			r.Proposed = n.ManagementAddresses[0]
		}
		rows = append(rows, r)
	}
	return rows
}

// switchConfigured reports whether locate.switches has a switch at one of
// addrs (host, or host:port).
func switchConfigured(cfg *config.Config, addrs []string) bool {
	if cfg == nil {
		return false
	}
	for _, sw := range cfg.Locate.Switches {
		host := sw.Address
		if h, _, err := net.SplitHostPort(sw.Address); err == nil {
			host = h
		}
		if slices.Contains(addrs, strings.Trim(host, "[]")) {
			return true
		}
	}
	return false
}

// postNeighborSwitch adds a neighbour as a new entry of locate.switches:
// the form's name and address (pre-filled from the neighbour), SNMP
// version 2c and the community the admin typed. It goes through the same
// validated, audited configuration change as the Policy page.
func (s *server) postNeighborSwitch(c *gin.Context) {
	cfg, ok := s.editableConfig(c)
	if !ok {
		return
	}
	sw := config.Switch{
		Name:      strings.TrimSpace(c.PostForm("name")),
		Address:   strings.TrimSpace(c.PostForm("address")),
		Version:   "2c",
		Community: c.PostForm("community"),
	}
	fail := func(msg string) {
		s.systemPage(c, http.StatusBadRequest, gin.H{"NeighborError": msg})
	}
	switch {
	case sw.Name == "" || sw.Address == "":
		fail("name and address are required")
		return
	case sw.Community == "":
		fail("the SNMP community is required")
		return
	case switchConfigured(cfg, []string{sw.Address}):
		fail(fmt.Sprintf("locate.switches already has a switch at %s", sw.Address))
		return
	}
	cfg.Locate.Switches = append(cfg.Locate.Switches, sw)
	err := cfg.Validate()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), applyTimeout)
		defer cancel()
		err = s.config.Apply(ctx, cfg, c.GetString(actorKey), remoteAddr(c))
	}
	var fe *config.FieldError
	switch {
	case errors.As(err, &fe):
		fail(err.Error())
		return
	case err != nil:
		s.log.Error("apply config", "err", err, "actor", c.GetString(actorKey))
		s.systemPage(c, http.StatusInternalServerError, gin.H{"NeighborError": fmt.Sprintf("%v (the previous configuration stays in force)", err)})
		return
	}
	c.Redirect(http.StatusSeeOther, "/system?switch=added")
}
