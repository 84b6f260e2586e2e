// Package manifest runs the injector over multi-document YAML streams of Kubernetes objects, for the
// offline commands: inject, explain, check.
package manifest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/rego-injector/rego-injector/engine/inject"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/policy"
	"github.com/rego-injector/rego-injector/engine/workload"
)

// Document is one YAML document of a stream.
type Document struct {
	// Index counts documents from 1, as a person would.
	Index int
	// Raw is the document's text as read.
	Raw []byte
	// Object is the document decoded as JSON values; nil for an empty document or one that is not
	// an object.
	Object map[string]any
}

// Split reads every document of a YAML stream. A document that is not valid YAML is an error naming it.
func Split(r io.Reader) ([]Document, error) {
	yr := k8syaml.NewYAMLReader(bufio.NewReader(r))
	var docs []Document
	for i := 1; ; i++ {
		raw, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		d := Document{Index: i, Raw: raw}
		var v any
		if err := yaml.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		d.Object, _ = v.(map[string]any)
		docs = append(docs, d)
	}
}

// Workload is the injector's answer for one workload found in a stream.
type Workload struct {
	Document  int    `json:"document"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Revision is the bundle revision that decided.
	Revision string `json:"revision"`
	// Rev and Tag name the revision that decided and the tag that chose it, when revisions are named.
	Rev string `json:"rev,omitempty"`
	Tag string `json:"tag,omitempty"`
	// Changed is true when injection changed the workload.
	Changed bool `json:"changed"`
	// Current is the injection of this revision the workload already carries, if any.
	Current *inject.Status `json:"current,omitempty"`
	// Note says what a reader should know of how the workload was read: that a kind this program
	// does not know was injected through its spec.template, or, when Skipped, why there was no pod
	// template to inject.
	Note string `json:"note,omitempty"`
	// Skipped is true for a workload with no pod template to inject (an Argo Rollout with
	// spec.workloadRef, a Deployment without its template): no decision was asked for, and Note
	// says why.
	Skipped  bool            `json:"skipped,omitempty"`
	Decision policy.Decision `json:"decision"`
	// Trace is the policy evaluation that decided, when the Processor traces.
	Trace string `json:"trace,omitempty"`
	// Validation is the validating policy's verdict on the workload as injected, when the Processor
	// validates.
	Validation *policy.Verdict `json:"validation,omitempty"`
	// Source names the file the workload was read from, when the caller says.
	Source string `json:"source,omitempty"`
	// Error, when set, says why the document (or the rest of the file) could not be checked; the
	// other fields are then empty.
	Error string `json:"error,omitempty"`
}

// Denied reports whether policy refuses the workload: its decision denies it, or its verdict does.
func (wl Workload) Denied() bool {
	return len(wl.Decision.Deny) > 0 || (wl.Validation != nil && len(wl.Validation.Deny) > 0)
}

// Answerer answers for the pods inside objects: an injector.Injector serving one revision, or a
// revisions.Set that picks one per pod.
type Answerer interface {
	InjectObject(ctx context.Context, obj map[string]any, namespace string) (map[string]any, injector.Result, bool, error)
	TraceObject(ctx context.Context, obj map[string]any, namespace string, w io.Writer) (bool, error)
	ValidateObject(ctx context.Context, obj map[string]any, namespace string) (policy.Verdict, bool, error)
}

// Processor runs an injector over streams.
type Processor struct {
	Injector Answerer
	// Namespace is the namespace of objects that do not name one.
	Namespace string
	// Trace records the policy evaluation of every workload Explain reports.
	Trace bool
	// Validate runs the validating policy on every workload as injected (Check sets it).
	Validate bool
}

// Check injects every workload of the stream, as Explain does, then runs the validating policy on
// each as injected: what the webhooks would say of it, mutating then validating.
func (p *Processor) Check(ctx context.Context, r io.Reader) ([]Workload, error) {
	q := *p
	q.Validate = true
	return q.Explain(ctx, r)
}

// Inject writes the stream with every workload injected. Documents that are not workloads, and
// workloads left unchanged, are written exactly as read, so that injecting the output again changes
// nothing. An injected document is headed by a comment for each note of its workloads (a kind
// injected through its spec.template without being known). Nothing is written unless every
// document succeeds.
func (p *Processor) Inject(ctx context.Context, r io.Reader, w io.Writer) ([]Workload, error) {
	docs, err := Split(r)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	var all []Workload
	for n, d := range docs {
		text := d.Raw
		before := len(all)
		obj, found, err := p.object(ctx, d, d.Object, &all)
		if err != nil {
			return all, err
		}
		if found {
			if text, err = yaml.Marshal(obj); err != nil {
				return all, fmt.Errorf("document %d: encode: %w", d.Index, err)
			}
			text = append(notes(all[before:]), text...)
		}
		if n > 0 {
			out.WriteString("---\n")
		}
		out.Write(text)
		if len(text) > 0 && text[len(text)-1] != '\n' {
			out.WriteByte('\n')
		}
	}
	_, err = w.Write(out.Bytes())
	return all, err
}

// notes are the YAML comments that head an injected document: the notes of the workloads it
// changed, such as a kind injected through its spec.template without being known.
func notes(workloads []Workload) []byte {
	var b bytes.Buffer
	for _, wl := range workloads {
		if wl.Changed && wl.Note != "" {
			line := fmt.Sprintf("rego-injector: %s/%s: %s", wl.Kind, wl.Name, wl.Note)
			fmt.Fprintf(&b, "# %s\n", strings.Map(oneLine, line))
		}
	}
	return b.Bytes()
}

// oneLine turns the characters YAML takes for line breaks into spaces, so that a comment stays one
// comment whatever names it quotes.
func oneLine(r rune) rune {
	switch r {
	case '\n', '\r', '\u0085', '\u2028', '\u2029':
		return ' '
	}
	return r
}

// Explain returns the decision for every workload of the stream, changing nothing.
func (p *Processor) Explain(ctx context.Context, r io.Reader) ([]Workload, error) {
	docs, err := Split(r)
	if err != nil {
		return nil, err
	}
	var all []Workload
	for _, d := range docs {
		if _, _, err := p.object(ctx, d, d.Object, &all); err != nil {
			return all, err
		}
	}
	return all, nil
}

// object injects obj, a document or an item of a List; changed is true when it differs.
func (p *Processor) object(ctx context.Context, d Document, obj map[string]any, all *[]Workload) (map[string]any, bool, error) {
	if obj == nil {
		return obj, false, nil
	}
	kind, _ := obj["kind"].(string)
	if strings.HasSuffix(kind, "List") { // List, PodList, DeploymentList, ...
		items, _ := obj["items"].([]any)
		changed := false
		out := make([]any, len(items))
		for i, it := range items {
			item, _ := it.(map[string]any)
			got, c, err := p.object(ctx, d, item, all)
			if err != nil {
				return obj, false, err
			}
			out[i], changed = got, changed || c
			if got == nil {
				out[i] = it
			}
		}
		if !changed {
			return obj, false, nil
		}
		list := make(map[string]any, len(obj))
		for k, v := range obj {
			list[k] = v
		}
		list["items"] = out
		return list, true, nil
	}
	meta, _ := obj["metadata"].(map[string]any)
	wl := Workload{Document: d.Index, Kind: kind, Namespace: p.Namespace}
	wl.Name, _ = meta["name"].(string)
	if ns, _ := meta["namespace"].(string); ns != "" {
		wl.Namespace = ns
	}
	got, res, isWorkload, err := p.Injector.InjectObject(ctx, obj, p.Namespace)
	if !isWorkload {
		if why := workload.NoTemplate(obj); why != "" {
			wl.Skipped, wl.Note = true, why
			*all = append(*all, wl)
		}
		return obj, false, nil
	}
	wl.Revision, wl.Decision, wl.Changed, wl.Current = res.Revision, res.Decision, res.Pod != nil, res.Current
	if sel := res.Selection; sel != nil {
		wl.Rev, wl.Tag = sel.Name, sel.Tag
	}
	if t, ok := workload.PodTemplate(obj); ok {
		wl.Note = t.Note
	}
	if err != nil {
		return obj, false, fmt.Errorf("document %d: %s %q: %w", d.Index, kind, wl.Name, err)
	}
	if p.Trace {
		var trace strings.Builder
		if _, err := p.Injector.TraceObject(ctx, obj, p.Namespace, &trace); err != nil {
			return obj, false, fmt.Errorf("document %d: %s %q: trace: %w", d.Index, kind, wl.Name, err)
		}
		wl.Trace = trace.String()
	}
	if p.Validate && len(res.Decision.Deny) == 0 {
		v, _, err := p.Injector.ValidateObject(ctx, got, p.Namespace)
		if err != nil {
			return obj, false, fmt.Errorf("document %d: %s %q: validate: %w", d.Index, kind, wl.Name, err)
		}
		wl.Validation = &v
	}
	*all = append(*all, wl)
	return got, res.Pod != nil, nil
}
