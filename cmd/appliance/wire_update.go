package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"time"

	"github.com/relaygate/relaygate/update"
)

// updateHandler is the firmware update API (package update), to be mounted
// behind the API's authentication at /api/v1/system/update: GET reports the
// slots, POST takes a bundle (body) and its SHA-256 (?sha256= or the
// X-Bundle-SHA256 header), writes it to the inactive slot and reboots into
// a single trial boot of it. Only meaningful on the appliance image (A/B
// root slots, ESP at /efi); elsewhere GET and POST answer with an error.
func updateHandler(log *slog.Logger) http.Handler {
	u := update.New(log)
	return u.Handler(func() error {
		// Let the HTTP answer reach the client before the reboot starts.
		time.AfterFunc(2*time.Second, func() {
			if out, err := exec.Command("systemctl", "reboot").CombinedOutput(); err != nil {
				log.Error("reboot after update", "err", fmt.Errorf("systemctl reboot: %w: %s", err, out))
			}
		})
		return nil
	})
}
