package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/relaygate/relaygate/update"
	"github.com/relaygate/relaygate/webui"
)

// updateHandler is the firmware update API (package update), to be mounted
// behind the API's authentication at /api/v1/system/update: GET reports the
// slots, POST takes a bundle (body) and its SHA-256 (?sha256= or the
// X-Bundle-SHA256 header), writes it to the inactive slot and reboots into
// a single trial boot of it. Only meaningful on the appliance image (A/B
// root slots, ESP at /efi); elsewhere GET and POST answer with an error.
func updateHandler(log *slog.Logger, r *rebooter) http.Handler {
	u := update.New(log)
	return u.Handler(func() error { return r.Reboot(context.Background()) })
}

// rebooter reboots the appliance a moment after it is asked to, so that
// the HTTP answer reaches the client first.
type rebooter struct {
	log   *slog.Logger
	delay time.Duration
}

var _ webui.System = (*rebooter)(nil)

func (r *rebooter) Reboot(ctx context.Context) error {
	time.AfterFunc(r.delay, func() {
		if out, err := exec.Command("systemctl", "reboot").CombinedOutput(); err != nil {
			r.log.Error("reboot", "err", fmt.Errorf("systemctl reboot: %w: %s", err, out))
		}
	})
	return nil
}

// onApplianceImage reports whether this is the appliance image (its
// os-release says IMAGE_ID=relaygate): only there may the web UI reboot
// the machine, which elsewhere is somebody's server or workstation.
func onApplianceImage() bool {
	b, err := os.ReadFile("/usr/lib/os-release")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "IMAGE_ID=relaygate" {
			return true
		}
	}
	return false
}
