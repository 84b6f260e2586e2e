package injector

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// maxDepth bounds the objects and arrays nested in one another, the outermost included, as
// encoding/json bounds them.
const maxDepth = 10000

// decodeObject parses the JSON object raw once into the two trees an admission needs: JSON values
// as encoding/json decodes them into any (maps, []any, float64, string, bool, nil), which the merge
// and the patch work on, and the same document as OPA's ast.Value, the policy input's. Every value
// means the same in both: numbers are float64s, and the ast number is the float64's, as
// ast.InterfaceToValue would make it; strings are decoded as encoding/json decodes them (invalid
// UTF-8 becomes U+FFFD); of duplicate keys the last wins. It refuses what encoding/json refuses.
func decodeObject(raw []byte) (map[string]any, ast.Value, error) {
	p := decoder{data: raw}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == 'n' {
		err := p.literal("null")
		if p.space(); err == nil && p.pos != len(p.data) {
			err = p.syntax("data after null")
		}
		if err != nil {
			return nil, nil, fmt.Errorf("decode the pod: %w", err)
		}
		return nil, nil, errors.New("decode the pod: the object is empty")
	}
	if p.pos >= len(p.data) || p.data[p.pos] != '{' {
		return nil, nil, fmt.Errorf("decode the pod: %w", p.syntax("want a JSON object"))
	}
	v, t, err := p.object(0)
	if err == nil {
		p.space()
		if p.pos != len(p.data) {
			err = p.syntax("data after the object")
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("decode the pod: %w", err)
	}
	return v, t.Value, nil
}

// decoder reads one JSON document from data. Terms are handed out from slabs, and the members
// of the object or array being read are gathered on stacks shared by all levels, so that a
// document costs few allocations beyond its maps, strings and lists.
type decoder struct {
	data  []byte
	pos   int
	slab  []ast.Term
	pairs [][2]*ast.Term
	items []*ast.Term
	vals  []any
}

// slabSize is how many terms one allocation holds, at most; a small document gets a slab of
// about its size.
const slabSize = 256

// term is a new term of v.
func (p *decoder) term(v ast.Value) *ast.Term {
	if len(p.slab) == cap(p.slab) {
		p.slab = make([]ast.Term, 0, min(slabSize, 8+len(p.data)/16))
	}
	p.slab = p.slab[:len(p.slab)+1]
	t := &p.slab[len(p.slab)-1]
	t.Value = v
	return t
}

func (p *decoder) syntax(msg string) error {
	if p.pos >= len(p.data) {
		return fmt.Errorf("unexpected end of JSON input: %s", msg)
	}
	return fmt.Errorf("invalid character %q at offset %d: %s", p.data[p.pos], p.pos, msg)
}

func (p *decoder) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// value reads the value at pos, inside depth objects and arrays.
func (p *decoder) value(depth int) (any, *ast.Term, error) {
	p.space()
	if p.pos >= len(p.data) {
		return nil, nil, p.syntax("want a value")
	}
	switch c := p.data[p.pos]; {
	case (c == '{' || c == '[') && depth >= maxDepth:
		return nil, nil, fmt.Errorf("JSON nested more than %d deep", maxDepth)
	case c == '{':
		m, t, err := p.object(depth)
		return m, t, err
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		return s, p.term(ast.String(s)), err
	case c == 't':
		return true, ast.InternedTerm(true), p.literal("true")
	case c == 'f':
		return false, ast.InternedTerm(false), p.literal("false")
	case c == 'n':
		return nil, ast.NullTerm(), p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, nil, p.syntax("want a value")
}

func (p *decoder) literal(word string) error {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return p.syntax("want " + word)
	}
	p.pos += len(word)
	return nil
}

func (p *decoder) object(depth int) (map[string]any, *ast.Term, error) {
	p.pos++ // {
	m := map[string]any{}
	mark := len(p.pairs)
	dups := false
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return m, ast.ObjectTerm(), nil
	}
	for {
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, nil, p.syntax("want an object key")
		}
		k, err := p.str()
		if err != nil {
			return nil, nil, err
		}
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, nil, p.syntax("want ':' after an object key")
		}
		p.pos++
		v, t, err := p.value(depth + 1)
		if err != nil {
			return nil, nil, err
		}
		if _, dup := m[k]; dup {
			dups = true
		}
		m[k] = v
		p.pairs = append(p.pairs, [2]*ast.Term{p.term(ast.String(k)), t})
		p.space()
		if p.pos >= len(p.data) {
			return nil, nil, p.syntax("want ',' or '}'")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			if dups {
				p.pairs = append(p.pairs[:mark], lastOfEachKey(p.pairs[mark:])...)
			}
			obj := ast.NewObject(p.pairs[mark:]...) // copies what it keeps
			p.pairs = p.pairs[:mark]
			return m, p.term(obj), nil
		default:
			return nil, nil, p.syntax("want ',' or '}'")
		}
	}
}

// lastOfEachKey is pairs with, of each key, only its last pair, in the order of those.
func lastOfEachKey(pairs [][2]*ast.Term) [][2]*ast.Term {
	seen := make(map[ast.String]bool, len(pairs))
	var out [][2]*ast.Term
	for i := len(pairs) - 1; i >= 0; i-- {
		if k := pairs[i][0].Value.(ast.String); !seen[k] {
			seen[k] = true
			out = append(out, pairs[i])
		}
	}
	slices.Reverse(out)
	return out
}

func (p *decoder) array(depth int) ([]any, *ast.Term, error) {
	p.pos++ // [
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return []any{}, ast.ArrayTerm(), nil
	}
	mark := len(p.items)
	for {
		v, t, err := p.value(depth + 1)
		if err != nil {
			return nil, nil, err
		}
		p.vals = append(p.vals, v)
		p.items = append(p.items, t)
		p.space()
		if p.pos >= len(p.data) {
			return nil, nil, p.syntax("want ',' or ']'")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			list := slices.Clone(p.vals[mark:])
			terms := slices.Clone(p.items[mark:])
			p.vals, p.items = p.vals[:mark], p.items[:mark]
			return list, p.term(ast.NewArray(terms...)), nil
		default:
			return nil, nil, p.syntax("want ',' or ']'")
		}
	}
}

// str reads a string. One without escapes, control characters or invalid UTF-8 is the bytes
// between its quotes; any other is decoded by encoding/json, whose rules it then follows exactly.
func (p *decoder) str() (string, error) {
	start := p.pos
	plain := true
	i := start + 1
	for ; i < len(p.data); i++ {
		c := p.data[i]
		if c == '"' {
			break
		}
		if c == '\\' {
			plain = false
			i++ // the escaped byte cannot end the string
			continue
		}
		if c < 0x20 || c >= utf8.RuneSelf {
			plain = false
		}
	}
	if i >= len(p.data) {
		p.pos = len(p.data)
		return "", p.syntax("unterminated string")
	}
	p.pos = i + 1
	body := p.data[start+1 : i]
	if plain || (!hasControlOrEscape(body) && utf8.Valid(body)) {
		return string(body), nil
	}
	var s string
	if err := json.Unmarshal(p.data[start:i+1], &s); err != nil {
		return "", fmt.Errorf("string at offset %d: %w", start, err)
	}
	return s, nil
}

func hasControlOrEscape(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '\\' {
			return true
		}
	}
	return false
}

// number reads a number as JSON writes it, into a float64 as encoding/json does.
func (p *decoder) number() (any, *ast.Term, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.data) && p.data[p.pos] == '0':
		p.pos++
	case p.pos < len(p.data) && p.data[p.pos] >= '1' && p.data[p.pos] <= '9':
		p.digits()
	default:
		return nil, nil, p.syntax("want a digit")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if p.digits() == 0 {
			return nil, nil, p.syntax("want a digit after '.'")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if p.digits() == 0 {
			return nil, nil, p.syntax("want a digit in the exponent")
		}
	}
	text := string(p.data[start:p.pos])
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return nil, nil, fmt.Errorf("number %s at offset %d does not fit a float64", text, start)
	}
	if f >= 0 && f < 1e6 && f == math.Trunc(f) && text[0] != '-' {
		return f, ast.InternedTerm(int(f)), nil // what FloatNumberTerm writes; OPA interns the smallest
	}
	return f, ast.FloatNumberTerm(f), nil
}

func (p *decoder) digits() int {
	n := 0
	for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		p.pos++
		n++
	}
	return n
}
