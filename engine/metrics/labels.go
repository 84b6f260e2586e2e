package metrics

import (
	"log/slog"
	"regexp"
	"sync"
)

// Label values that come from policy (a skip decision's code, a violation's rule) are bounded, so
// that a bundle cannot make series without end: a value becomes a label value only if it matches
// PolicyLabelPattern and is among the first MaxPolicyLabelValues distinct values of its label seen
// since the start. Any other is counted as OtherLabelValue, and logged once.
const (
	// PolicyLabelPattern is what a code or rule name must look like: lower-case snake case, up to
	// 63 characters.
	PolicyLabelPattern = `^[a-z][a-z0-9_]{0,62}$`
	// MaxPolicyLabelValues is how many distinct values each such label takes.
	MaxPolicyLabelValues = 100
	// OtherLabelValue stands for every value refused.
	OtherLabelValue = "other"
	// maxLoggedValues bounds the memory of refused values already logged.
	maxLoggedValues = 1000
)

var policyLabelRE = regexp.MustCompile(PolicyLabelPattern)

// policyLabel is the bound of one label. The empty value (no code) always passes and is not counted.
type policyLabel struct {
	name     string
	log      *slog.Logger
	accepted sync.Map // string → struct{}: the fast path once a value is known

	mu      sync.Mutex
	count   int
	refused map[string]struct{}
}

func newPolicyLabel(name string, log *slog.Logger) *policyLabel {
	return &policyLabel{name: name, log: log, refused: map[string]struct{}{}}
}

// value is v if v may be a label value, else OtherLabelValue.
func (p *policyLabel) value(v string) string {
	if v == "" {
		return v
	}
	if _, ok := p.accepted.Load(v); ok {
		return v
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.accepted.Load(v); ok {
		return v
	}
	why := ""
	switch {
	case !policyLabelRE.MatchString(v):
		why = "does not match " + PolicyLabelPattern
	case p.count >= MaxPolicyLabelValues:
		why = "the label has its maximum of distinct values"
	default:
		p.count++
		p.accepted.Store(v, struct{}{})
		return v
	}
	if _, logged := p.refused[v]; logged || len(p.refused) > maxLoggedValues {
		return OtherLabelValue
	}
	if len(p.refused) == maxLoggedValues {
		p.refused[""] = struct{}{} // said once: the log stops here
		p.log.Warn("policy label values counted as "+OtherLabelValue+": too many distinct ones to log more", "label", p.name, "logged", maxLoggedValues)
		return OtherLabelValue
	}
	p.refused[v] = struct{}{}
	shown := v
	if len(shown) > 100 {
		shown = shown[:100] + "..."
	}
	p.log.Warn("policy label value counted as "+OtherLabelValue, "label", p.name, "value", shown, "why", why,
		"pattern", PolicyLabelPattern, "max", MaxPolicyLabelValues)
	return OtherLabelValue
}
