package webui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"

	"github.com/gin-gonic/gin"
)

// assetRoutes serves the embedded styles and scripts, without a session.
func (s *server) assetRoutes(public *gin.RouterGroup) {
	public.GET("/static/*file", s.static)
	public.GET("/vendor/*file", s.vendor)
}

// assets are the embedded pages, styles and scripts: the appliance serves
// everything itself (no CDN), which also lets the CSP stay at 'self'.
//
//go:embed assets
var assets embed.FS

// static serves embedded files under assets/static, never directory
// listings.
func (s *server) static(c *gin.Context) {
	name := path.Clean("/" + c.Param("file"))
	name = "assets/static" + name
	st, err := fs.Stat(assets, name)
	if err != nil || st.IsDir() {
		notFound(c)
		return
	}
	http.ServeFileFS(c.Writer, c.Request, assets, name)
}

// vendor serves the embedded third-party assets (uPlot), never
// directory listings.
func (s *server) vendor(c *gin.Context) {
	name := "assets/vendor" + path.Clean("/"+c.Param("file"))
	st, err := fs.Stat(assets, name)
	if err != nil || st.IsDir() {
		notFound(c)
		return
	}
	http.ServeFileFS(c.Writer, c.Request, assets, name)
}
