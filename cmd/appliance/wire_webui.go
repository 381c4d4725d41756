package main

import (
	"net/http"

	"github.com/relaygate/relaygate/webui"
)

// webDeps gathers what the web UI and API read and change.
func (d *daemon) webDeps(metrics http.Handler) webui.Deps {
	return webui.Deps{
		Logger:  d.log,
		Events:  storeEvents{d.store},
		Tokens:  d.store,
		Config:  d,
		Status:  d,
		Metrics: metrics,
	}
}
