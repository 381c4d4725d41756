package config

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// exampleFile is the annotated example configuration that docs/configuration.md
// points to: every key, its default and a comment.
const exampleFile = "../docs/relaygate.example.yaml"

// siteSpecific are the keys whose value in the example is a site's own and
// not the default: the names of the ports and the box's addresses and
// gateways (required, or with no useful default), and the relay list (empty
// by default). Every other key the example sets must equal config.Default().
var siteSpecific = map[string]string{
	"interfaces.inside":           "required; no default",
	"interfaces.outside":          "required; no default",
	"interfaces.management":       "required; no default",
	"interfaces.bridge_addresses": "the box's own addresses on br0; none by default",
	"interfaces.bridge_gateways":  "the router; none by default",
	"interfaces.inside_gateways":  "the L3 switch; none by default",
	"relays":                      "the site's relays; empty by default",
}

// TestExampleLoads: the example parses strictly (unknown keys are errors)
// and validates, as the daemon would read it.
func TestExampleLoads(t *testing.T) {
	c, err := Load(exampleFile)
	if err != nil {
		t.Fatalf("Load(%s) = %v, want a valid configuration", exampleFile, err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Load(%s).Validate() = %v, want nil", exampleFile, err)
	}
}

// TestExampleMatchesDefaults: every key the example sets has the value of
// config.Default(), except the site-specific keys above; and every key of
// the schema appears in the example (with every field of a relay), with a
// comment.
func TestExampleMatchesDefaults(t *testing.T) {
	raw, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(raw)
	if err != nil {
		t.Fatalf("Parse(%s) = %v", exampleFile, err)
	}
	// Inspect.Enabled and .ReverseDNS are pointers whose nil means on; the
	// example states the effective default.
	def := Default()
	on, rdns := def.Inspect.On(), def.Inspect.ReverseDNSOn()
	def.Inspect.Enabled, def.Inspect.ReverseDNS = &on, &rdns

	// What the example file itself sets, and the values it sets them to
	// (through the Config type, so 60s and 1m0s compare equal).
	var set map[string]any
	if err := yaml.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	setKeys := flatten("", set)
	got, want := flatten("", toMap(t, c)), flatten("", toMap(t, def))

	for _, k := range sortedKeys(setKeys) {
		if _, ok := siteSpecific[k]; ok {
			continue
		}
		w, ok := want[k]
		if !ok {
			continue // a key Default does not set (a list element's field)
		}
		if diff := cmp.Diff(w, got[k]); diff != "" {
			t.Errorf("example %s differs from config.Default() (-default +example):\n%s", k, diff)
		}
	}
	for _, k := range sortedKeys(want) {
		if _, ok := setKeys[k]; !ok {
			t.Errorf("example does not set %s (default %v): every key belongs in it", k, want[k])
		}
	}
	for k := range siteSpecific {
		if _, ok := setKeys[k]; !ok {
			t.Errorf("siteSpecific names %s, which the example does not set", k)
		}
	}
	// A relay entry shows every field a relay has.
	relayKeys := flatten("", toMap(t, Relay{}))
	if len(c.Relays) == 0 {
		t.Fatal("example has no relay: it should show one with every field")
	}
	rel := set["relays"].([]any)[0].(map[string]any)
	for k := range relayKeys {
		if _, ok := rel[k]; !ok {
			t.Errorf("example relays[0] does not set %s", k)
		}
	}

	// Every key carries a comment.
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range uncommented(doc.Content[0], "", false) {
		t.Errorf("example key %s has no comment", k)
	}
}

// TestExampleCheckConfig: the binary accepts the example
// (appliance check-config), as an administrator would check a file.
func TestExampleCheckConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/appliance; skipped with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot build cmd/appliance")
	}
	bin := filepath.Join(t.TempDir(), "appliance")
	build := exec.Command(gobin, "build", "-o", bin, "./cmd/appliance")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/appliance: %v\n%s", err, out)
	}
	abs, err := filepath.Abs(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "check-config", "--config", abs).CombinedOutput()
	if err != nil {
		t.Fatalf("appliance check-config --config %s: %v\n%s", exampleFile, err, out)
	}
	if want := abs + ": ok"; !strings.HasPrefix(string(out), want) {
		t.Errorf("appliance check-config --config %s = %q, want it to start with %q", exampleFile, out, want)
	}
}

// toMap renders v as YAML and reads it back as plain maps and lists.
func toMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// flatten maps dotted key paths (proxy.idle_timeout) to their values;
// lists and empty maps are values, not descended into.
func flatten(prefix string, m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			for kk, vv := range flatten(key, sub) {
				out[kk] = vv
			}
			continue
		}
		out[key] = v
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// uncommented lists the keys under n that carry no comment: on the key,
// on its value, or, for the fields of a one-line flow mapping such as
// {url: ""}, on the key that holds the mapping.
func uncommented(n *yaml.Node, prefix string, parentCommented bool) []string {
	var out []string
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if prefix != "" {
				key = prefix + "." + k.Value
			}
			commented := k.HeadComment != "" || k.LineComment != "" || v.HeadComment != "" || v.LineComment != ""
			leaf := v.Kind != yaml.MappingNode || len(v.Content) == 0
			if leaf && !commented && !(parentCommented && n.Style&yaml.FlowStyle != 0) {
				out = append(out, key)
			}
			out = append(out, uncommented(v, key, commented)...)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			out = append(out, uncommented(item, fmt.Sprintf("%s[%d]", prefix, i), parentCommented)...)
		}
	}
	return out
}
