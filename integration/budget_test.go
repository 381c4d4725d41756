package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/event"
	"github.com/relaygate/relaygate/internal/testutil/lab"
)

// TestInspectMemoryBudget: in monitor mode (no kernel flood limit) the PC
// holds 120 SMTP sessions open, each having sent 100 long recipients, while
// passive inspection may hold 1 MiB. The daemon sheds flows and says so on
// /metrics, its accounted memory stays within the budget, and a relay's
// session meanwhile is still reported in full.
func TestInspectMemoryBudget(t *testing.T) {
	a := startAppliance(t, "monitor", "inspect:\n  reverse_dns: false\n  memory_mb: 1\n")
	var rcpts strings.Builder
	rcpts.WriteString("EHLO bot\r\nMAIL FROM:<bot@pc.example>\r\n")
	for i := range 100 {
		fmt.Fprintf(&rcpts, "RCPT TO:<r%03d-%s@remote.example>\r\n", i, strings.Repeat("x", 280))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	flood := theLab.Command(ctx, "pc", "bash", "-c",
		`for i in $(seq 120); do (exec 3<>/dev/tcp/`+lab.MX4+`/25 && printf '%s' "$RCPTS" >&3 && sleep 60) 2>/dev/null & done; wait`)
	flood.Env = append(os.Environ(), "RCPTS="+rcpts.String())
	startGroup(t, flood)

	const shed, used, budget = `relaygate_inspect_drops_total{where="memory"}`, "relaygate_inspect_memory_bytes", "relaygate_inspect_memory_budget_bytes"
	var m map[string]float64
	for deadline := time.Now().Add(30 * time.Second); ; {
		m = scrape(t, a)
		if m[budget] != 1<<20 {
			t.Fatalf("%s = %v, want %d", budget, m[budget], 1<<20)
		}
		if m[used] > m[budget] {
			t.Fatalf("%s = %v, over the budget %v", used, m[used], m[budget])
		}
		if m[shed] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after 30 s of 120 sessions holding ~35 KiB each in 1 MiB (%s = %v)", shed, m[shed], used, m[used])
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%s = %v, %s = %v of %v", shed, m[shed], used, m[used], m[budget])

	// The relay's session, while the flood holds the budget, is parsed
	// whole: it comes out with its sender and without the shed note.
	from := uniqueSender(t, "relay")
	sendOK(t, "relay", lab.MX4, from)
	e := waitEvent(t, a, event.Relayed, lab.Relay4, from)
	if e.Messages != 1 || strings.Contains(e.Detail, "not fully inspected") {
		t.Errorf("relay's session: messages %d, detail %q; want 1 message, fully inspected", e.Messages, e.Detail)
	}
	if m := scrape(t, a); m[used] > m[budget] {
		t.Errorf("%s = %v, over the budget %v", used, m[used], m[budget])
	}
}
