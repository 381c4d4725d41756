package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Parse reads a configuration from YAML (JSON is YAML too), rejects unknown
// keys, sets defaults and validates. Errors are one line and name the key
// and, where known, the line.
func Parse(data []byte) (*Config, error) {
	return ParseWith(data, nil)
}

// ParseWith is Parse with prepare run on the configuration as written,
// before defaults and validation: e.g. to fill in write-only secrets that a
// client sent back masked or empty.
func ParseWith(data []byte, prepare func(*Config)) (*Config, error) {
	c, doc, err := decode(data)
	if err != nil {
		return nil, err
	}
	if prepare != nil {
		prepare(c)
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Line = lineOf(doc, fe.Key)
		}
		return nil, err
	}
	return c, nil
}

// decode is Parse without defaults and validation: the configuration as
// written, and its document node for finding a key's line.
func decode(data []byte) (*Config, *yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, oneLine(err)
	}
	if len(root.Content) == 0 {
		return nil, nil, errors.New("config is empty")
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("line %d: config must be a mapping of keys", doc.Line)
	}
	if err := checkKnown(doc, reflect.TypeOf(Config{}), "", doc.Line); err != nil {
		return nil, nil, err
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, nil, oneLine(err)
	}
	return &c, doc, nil
}

var yamlLineRE = regexp.MustCompile(`\s*\n\s*`)

// oneLine flattens yaml's multi-line errors.
func oneLine(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimSpace(strings.TrimPrefix(msg, "unmarshal errors:"))
	msg = yamlLineRE.ReplaceAllString(msg, "; ")
	return errors.New(msg)
}

// checkKnown walks the YAML mapping against the struct's yaml tags and
// reports the first unknown key, or value of the wrong type, with its full
// name and line (yaml's own decoding errors name only the line).
func checkKnown(n *yaml.Node, t reflect.Type, prefix string, line int) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if isText(t) {
		return checkText(n, t, prefix, line)
	}
	switch n.Kind {
	case yaml.MappingNode:
		if t.Kind() != reflect.Struct {
			return nil
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if prefix != "" {
				key = prefix + "." + k.Value
			}
			ft, ok := fields[k.Value]
			if !ok {
				return &FieldError{Key: key, Line: k.Line, Msg: "unknown key"}
			}
			if err := checkKnown(v, ft, key, k.Line); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice {
			for i, v := range n.Content {
				if err := checkKnown(v, t.Elem(), fmt.Sprintf("%s[%d]", prefix, i), v.Line); err != nil {
					return err
				}
			}
		}
	}
	if prefix == "" {
		return nil
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		return &FieldError{Key: prefix, Line: line, Msg: decodeMsg(err)}
	}
	return nil
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
)

// isText reports whether t is a value written as one string (netip.Addr,
// netip.Prefix, Prefix) that yaml decodes through UnmarshalText: a mapping
// would otherwise decode into its (unexported) fields without an error.
func isText(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return pt.Implements(textUnmarshaler) && !pt.Implements(yamlUnmarshaler)
}

// checkText checks a value of a type that isText: a scalar that parses.
// The message for a bad value is Validate's for the same key (valueMsgs),
// so that "invalid address" reads the same whoever finds it.
func checkText(n *yaml.Node, t reflect.Type, key string, line int) error {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		return &FieldError{Key: key, Line: line, Msg: fmt.Sprintf("cannot unmarshal %s into %s", n.ShortTag(), t)}
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		msg, ok := valueMsg(key, n.Value)
		if !ok {
			msg = decodeMsg(err)
		}
		return &FieldError{Key: key, Line: line, Msg: msg}
	}
	return nil
}

var yamlLinePrefixRE = regexp.MustCompile(`^line \d+: `)

// decodeMsg is the first message of a decoding error, without yaml's line
// prefix (FieldError adds the line).
func decodeMsg(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return yamlLinePrefixRE.ReplaceAllString(te.Errors[0], "")
	}
	return yamlLinePrefixRE.ReplaceAllString(oneLine(err).Error(), "")
}

var keyPartRE = regexp.MustCompile(`^([a-z_]+)(?:\[(\d+)\])?$`)

// lineOf finds the line of a key such as "relays[1].address" in the document,
// or of the nearest ancestor present; 0 when nothing matches.
func lineOf(doc *yaml.Node, key string) int {
	n, line := doc, 0
	for _, part := range strings.Split(key, ".") {
		m := keyPartRE.FindStringSubmatch(part)
		if m == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == m[1] {
				line, next = n.Content[i].Line, n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
		if m[2] != "" {
			var idx int
			fmt.Sscanf(m[2], "%d", &idx)
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	if n.Kind == yaml.ScalarNode || line == 0 {
		line = n.Line
	}
	return line
}
