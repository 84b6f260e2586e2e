package injector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"sigs.k8s.io/yaml"
)

// sameAsStandard checks decodeObject on raw against what it replaces: encoding/json into a map,
// then ast.InterfaceToValue. Both must refuse the same documents, and give the same trees
// (the ast compared by value and by its text, which is what sprintf and json.marshal see).
func sameAsStandard(t *testing.T, raw []byte) {
	t.Helper()
	var want map[string]any
	wantErr := json.Unmarshal(raw, &want)
	got, value, err := decodeObject(raw)
	if wantErr != nil || want == nil {
		if err == nil {
			t.Fatalf("decoded what encoding/json refuses (%v): %.200q", wantErr, raw)
		}
		return
	}
	if err != nil {
		t.Fatalf("refused what encoding/json decodes: %v: %.200q", err, raw)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("JSON values differ from encoding/json's for %.200q:\n got %v\nwant %v", raw, got, want)
	}
	wantValue, err := ast.InterfaceToValue(want)
	if err != nil {
		t.Fatal(err)
	}
	if value.Compare(wantValue) != 0 || value.String() != wantValue.String() {
		t.Fatalf("ast differs from InterfaceToValue's for %.200q:\n got %v\nwant %v", raw, value, wantValue)
	}
}

func TestDecodeObjectEdgeCases(t *testing.T) {
	for _, raw := range []string{
		`{}`, ` {"a":1} `, `{"a":{"b":[1,2,{"c":null}]},"d":true,"e":false}`,
		`{"n":[0,-0,1,-1,1.5,1e6,999999,1000000,123456789012,1e21,1E-7,0.1,-2.5e+3,12345678901234567890]}`,
		`{"s":["", "plain", "tab\tescape", "quote\"", "back\\slash", "\/", "\u00e9", "\ud83d\ude00", "\ud800", "é", "日本"]}`,
		"{\"bad utf8\":\"\xff\xfe\"}", "{\"\xc3\":1}",
		`{"dup":1,"dup":2}`, `{"dup":{"a":1},"x":0,"dup":[3]}`,
		`{"key with \"escape\"":1}`,
		// refused
		``, ` `, `null`, ` null `, `[]`, `"s"`, `1`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1}}`, `{"a":1} x`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":+1}`, `{"a":1e400}`, `{"a":-}`,
		`{"a":tru}`, `{"a":nul}`, `{"a":"unterminated}`, "{\"a\":\"ctl\x01\"}", `{"a":"\x"}`, `{"a":"\u12"}`,
		`{"a":[1,]}`, `{"a":[1 2]}`, `{a:1}`, `{"a":1 "b":2}`, `null null`, `null {}`, `null{"a":1}`, `nullx`,
	} {
		sameAsStandard(t, []byte(raw))
	}
}

// TestDecodeObjectNesting: as deep as encoding/json goes (the outer object and 9,999 arrays), and
// not one level deeper.
func TestDecodeObjectNesting(t *testing.T) {
	nested := func(arrays int) []byte {
		return []byte(`{"a":` + strings.Repeat("[", arrays) + strings.Repeat("]", arrays) + `}`)
	}
	sameAsStandard(t, nested(maxDepth-1))
	sameAsStandard(t, nested(maxDepth))
	if _, _, err := decodeObject(nested(maxDepth)); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("got %v", err)
	}
}

// TestDecodeObjectManyDuplicates: a repeated key costs what encoding/json pays for it, not a scan
// of the object (the body limit lets a client send hundreds of thousands): 100,000 repeats take
// about as long after 20,000 other keys as after 1,000.
func TestDecodeObjectManyDuplicates(t *testing.T) {
	doc := func(keys int) []byte {
		var b strings.Builder
		b.WriteString(`{`)
		for i := range keys {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		for i := range 100000 {
			fmt.Fprintf(&b, `"k0":%d,`, i)
		}
		b.WriteString(`"end":true}`)
		return []byte(b.String())
	}
	took := func(raw []byte, keys int) time.Duration {
		start := time.Now()
		m, v, err := decodeObject(raw)
		if err != nil || len(m) != keys+1 || v.(ast.Object).Len() != keys+1 || m["k0"] != float64(99999) {
			t.Fatalf("%d keys (k0 = %v), %v", len(m), m["k0"], err)
		}
		return time.Since(start)
	}
	small, large := doc(1000), doc(20000)
	sameAsStandard(t, large)
	few, many := took(small, 1000), took(large, 20000)
	if many > 4*few+100*time.Millisecond {
		t.Errorf("100,000 repeated keys took %s after 20,000 keys, %s after 1,000", many, few)
	}
}

// TestDecodeObjectOnRealManifests: the benchmark pods and every object of the shared corpus.
func TestDecodeObjectOnRealManifests(t *testing.T) {
	if len(corpusFiles()) == 0 {
		t.Skip("no corpus beside the checkout ($REGO_INJECTOR_CORPUS)")
	}
	pods := decodeSeeds(t)
	if len(pods) < 50 {
		t.Fatalf("only %d documents to compare on", len(pods))
	}
	for _, raw := range pods {
		sameAsStandard(t, raw)
	}
}

// FuzzDecodeObject: decodeObject accepts exactly what encoding/json does, and gives the same trees.
func FuzzDecodeObject(f *testing.F) {
	for _, raw := range decodeSeeds(f) {
		f.Add(raw)
	}
	f.Add([]byte(`{"a":"\ud83d\ude00","b":[1e6,-0,0.5],"a":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		sameAsStandard(t, raw)
	})
}

// decodeSeeds are the benchmark pods and the objects of the shared corpus's manifests, as JSON.
func decodeSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	bench, _ := filepath.Glob("testdata/bench/*.json")
	for _, p := range bench {
		raw, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, raw)
	}
	for _, raw := range corpusFiles() {
		for _, doc := range bytes.Split(raw, []byte("\n---")) {
			if js, err := yaml.YAMLToJSON(doc); err == nil && bytes.HasPrefix(js, []byte("{")) {
				out = append(out, js)
			}
		}
	}
	return out
}

// corpusFiles are the YAML files of the shared corpus of real manifests ($REGO_INJECTOR_CORPUS, or
// ../shared beside the checkout); none when it is not there.
func corpusFiles() [][]byte {
	dir := os.Getenv("REGO_INJECTOR_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	var files [][]byte
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return nil
		}
		if raw, err := os.ReadFile(path); err == nil {
			files = append(files, raw)
		}
		return nil
	})
	return files
}
