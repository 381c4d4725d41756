package webui

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/relaygate/relaygate/export"
)

// ExportStatus reports the syslog collectors events are exported to
// (*export.Exporter); optional: without it GET /api/v1/export is [] and the
// System page lists no collector.
type ExportStatus interface {
	// Status returns each configured collector's state.
	Status() []export.CollectorStatus
}

var _ ExportStatus = (*export.Exporter)(nil)

// exportRoutes registers GET /api/v1/export: what the System page shows
// per collector.
func (s *server) exportRoutes(api *gin.RouterGroup) {
	api.GET("/export", func(c *gin.Context) { c.JSON(http.StatusOK, s.exportNow()) })
}

// exportNow is the collectors' state, never nil.
func (s *server) exportNow() []export.CollectorStatus {
	var st []export.CollectorStatus
	if s.export != nil {
		st = s.export.Status()
	}
	if st == nil {
		st = []export.CollectorStatus{}
	}
	return st
}

// exportRow is one collector on the System page.
type exportRow struct {
	export.CollectorStatus
	// Spool is SpoolBytes for the bytes template function.
	Spool uint64
	// Dropped sums the losses of every reason.
	DroppedTotal uint64
}

func (s *server) exportRows() []exportRow {
	var rows []exportRow
	for _, st := range s.exportNow() {
		r := exportRow{CollectorStatus: st, Spool: uint64(max(0, st.SpoolBytes))}
		for _, n := range st.Dropped {
			r.DroppedTotal += n
		}
		rows = append(rows, r)
	}
	return rows
}
