package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// SecretMask stands for a secret (a switch's SNMP community or v3
// passphrases) wherever the configuration is shown: the API, the backup
// and the audit log's diffs.
const SecretMask = "********"

// secretKey matches the keys whose values are secrets.
var secretKey = regexp.MustCompile(`^locate\.switches\[\d+\]\.(community|auth_pass|priv_pass)$`)

// Change is one key that differs between two configurations, with its
// values as YAML scalars ("" for a key that is absent on that side).
type Change struct {
	// Key is the path of the key, e.g. relays[1].address or mode.
	Key string `json:"key"`
	Old string `json:"old"`
	New string `json:"new"`
}

// String renders the change as "key: old -> new".
func (c Change) String() string {
	show := func(s string) string {
		if s == "" {
			return "(none)"
		}
		return s
	}
	return c.Key + ": " + show(c.Old) + " -> " + show(c.New)
}

// Diff lists the keys whose values differ between old and new, sorted by
// key. A list of scalars (ports, bridge_addresses) is one value; lists of
// records (relays, switches) are compared item by item. Secrets are
// masked: a changed secret shows as a change from mask to mask.
func Diff(old, new *Config) ([]Change, error) {
	a, err := flattenConfig(old)
	if err != nil {
		return nil, fmt.Errorf("diff: old configuration: %w", err)
	}
	b, err := flattenConfig(new)
	if err != nil {
		return nil, fmt.Errorf("diff: new configuration: %w", err)
	}
	var out []Change
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, Change{Key: k, Old: v, New: w})
		}
	}
	for k, w := range b {
		if _, ok := a[k]; !ok {
			out = append(out, Change{Key: k, New: w})
		}
	}
	slices.SortFunc(out, func(x, y Change) int { return strings.Compare(x.Key, y.Key) })
	for i := range out {
		if secretKey.MatchString(out[i].Key) {
			for _, f := range []*string{&out[i].Old, &out[i].New} {
				if *f != "" {
					*f = SecretMask
				}
			}
		}
	}
	return out, nil
}

// flattenConfig renders c as its YAML keys and scalar values; nil is empty.
func flattenConfig(c *Config) (map[string]string, error) {
	out := map[string]string{}
	if c == nil {
		return out, nil
	}
	b, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("re-read configuration: %w", err)
	}
	if len(doc.Content) == 1 {
		flattenNode(doc.Content[0], "", out)
	}
	return out, nil
}

func flattenNode(n *yaml.Node, key string, out map[string]string) {
	switch {
	case n.Kind == yaml.MappingNode && len(n.Content) > 0:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if key != "" {
				k = key + "." + k
			}
			flattenNode(n.Content[i+1], k, out)
		}
	case n.Kind == yaml.SequenceNode && !allScalars(n):
		for i, item := range n.Content {
			flattenNode(item, key+"["+strconv.Itoa(i)+"]", out)
		}
	case n.Kind == yaml.ScalarNode:
		// An empty value is an absent one: a new relay's unset fields
		// are not changes.
		if n.Value != "" {
			out[key] = n.Value
		}
	default:
		// Lists of scalars and empty records as one flow-style value.
		n.Style = yaml.FlowStyle
		b, err := yaml.Marshal(n)
		if err != nil {
			out[key] = "?"
			return
		}
		out[key] = strings.TrimSpace(string(b))
	}
}

func allScalars(n *yaml.Node) bool {
	for _, c := range n.Content {
		if c.Kind != yaml.ScalarNode {
			return false
		}
	}
	return true
}

// DiffSummary renders changes for an audit entry: "k: a -> b; ..." at
// most max bytes, ending with how many were left out.
func DiffSummary(changes []Change, max int) string {
	if len(changes) == 0 {
		return "no changes"
	}
	var b strings.Builder
	for i, c := range changes {
		s := c.String()
		if i > 0 {
			s = "; " + s
		}
		rest := fmt.Sprintf("; and %d more", len(changes)-i)
		if b.Len()+len(s)+len(rest) > max && i > 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(s)
	}
	return b.String()
}
