package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// toYAML renders v as block-style YAML without a trailing newline, ready for `indent`/`nindent`.
// Values are taken as encoding/json sees them (a typed value by its JSON field names). It writes
// the YAML itself: a JSON value goes straight to text, where a YAML library would encode it to
// JSON, decode that into YAML nodes and encode those, and the proxy's resources are rendered
// for every new pod. Strings are double-quoted as JSON quotes them (which YAML reads the same),
// so that no value changes type on the way; keys are plain where YAML cannot misread them.
func toYAML(v any) (string, error) {
	var b strings.Builder
	if err := writeYAML(&b, v, 0, false); err != nil {
		return "", fmt.Errorf("toYaml: %w", err)
	}
	return b.String(), nil
}

// writeYAML writes v at indent; inline says that the first line continues one already begun
// (after "- "), so that it takes no indentation of its own.
func writeYAML(b *strings.Builder, v any, indent int, inline bool) error {
	v, err := plain(v)
	if err != nil {
		return err
	}
	pad := func() {
		if inline {
			inline = false
			return
		}
		b.WriteString(strings.Repeat(" ", indent))
	}
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			pad()
			b.WriteString("{}")
			return nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte('\n')
			}
			pad()
			b.WriteString(yamlKey(k))
			b.WriteByte(':')
			if err := writeChild(b, x[k], indent+2); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if len(x) == 0 {
			pad()
			b.WriteString("[]")
			return nil
		}
		for i, item := range x {
			if i > 0 {
				b.WriteByte('\n')
			}
			pad()
			b.WriteString("- ")
			if err := writeYAML(b, item, indent+2, true); err != nil {
				return err
			}
		}
		return nil
	}
	s, _, err := yamlScalar(v)
	if err != nil {
		return err
	}
	pad()
	b.WriteString(s)
	return nil
}

// writeChild writes the value of a mapping key: a scalar or an empty collection on the key's
// line, anything else on the lines below, indented.
func writeChild(b *strings.Builder, v any, indent int) error {
	v, err := plain(v)
	if err != nil {
		return err
	}
	m, isMap := v.(map[string]any)
	l, isList := v.([]any)
	if (isMap && len(m) > 0) || (isList && len(l) > 0) {
		b.WriteByte('\n')
		return writeYAML(b, v, indent, false)
	}
	b.WriteByte(' ')
	return writeYAML(b, v, indent, true)
}

// plain is v if it is a JSON value (a map, a list or a scalar), else v as encoding/json encodes it,
// decoded.
func plain(v any) (any, error) {
	switch v.(type) {
	case map[string]any, []any:
		return v, nil
	}
	if _, ok, err := yamlScalar(v); ok || err != nil {
		return v, err
	}
	return jsonValue(v)
}

// yamlScalar renders a JSON scalar; ok is false for anything else.
func yamlScalar(v any) (s string, ok bool, err error) {
	switch x := v.(type) {
	case nil:
		return "null", true, nil
	case bool:
		return strconv.FormatBool(x), true, nil
	case string:
		return quote(x), true, nil
	case json.Number:
		return x.String(), true, nil
	case float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		j, err := json.Marshal(x)
		return string(j), err == nil, err
	}
	return "", false, nil
}

// jsonValue is v as encoding/json encodes it, decoded into maps, lists and scalars.
func jsonValue(v any) (any, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var out any
	err = dec.Decode(&out)
	return out, err
}

// plainKey matches keys YAML reads back as the same string when written without quotes.
var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_./-]*$`)

func yamlKey(k string) string {
	switch strings.ToLower(k) {
	case "true", "false", "null", "yes", "no", "on", "off", "y", "n":
		return quote(k)
	}
	if plainKey.MatchString(k) {
		return k
	}
	return quote(k)
}

// quote double-quotes s as JSON does, without HTML escaping, and escapes too the characters YAML
// does not allow unescaped (DEL, C1 controls, U+FEFF, U+FFFE, U+FFFF): a YAML double-quoted
// scalar that reads back as s.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	q := strings.TrimSuffix(b.String(), "\n")
	if strings.IndexFunc(q, notYAMLPrintable) < 0 {
		return q
	}
	var out strings.Builder
	for _, r := range q {
		if notYAMLPrintable(r) {
			fmt.Fprintf(&out, "\\u%04x", r)
			continue
		}
		out.WriteRune(r)
	}
	return out.String()
}

// notYAMLPrintable reports a character YAML's printable set leaves out, of those JSON writes raw
// (JSON already escapes the C0 controls).
func notYAMLPrintable(r rune) bool {
	return r == 0x7f || (r >= 0x80 && r <= 0x9f && r != 0x85) || r == 0xfeff || r == 0xfffe || r == 0xffff
}
