package injector

// Selection is how the revision answering an admission was chosen (see engine/revisions). Policy
// reads it as input.revision, the status annotation and the decision log record it, and its
// reasons and warnings lead the decision's.
type Selection struct {
	// Name is the revision chosen; Tag the tag that led to it, "" when the name was a revision's.
	Name string
	Tag  string
	// Label is the label that chose it ({"on", "key", "value"}), nil when a namespace switch label
	// or nothing did (the default tag). When Forced, it is the label that would have chosen, which
	// still says whether the pod's labels enable injection.
	Label map[string]string
	// Forced is true when the command line's --revision chose Name, over the labels.
	Forced bool
	// Reasons and Warnings say how it was chosen and what was not read.
	Reasons, Warnings []string
}

// inputValue is input.revision.
func (s *Selection) inputValue() map[string]any {
	v := map[string]any{"name": s.Name, "tag": s.Tag}
	if s.Forced {
		v["forced"] = true
	}
	if s.Label != nil {
		label := make(map[string]any, len(s.Label))
		for k, x := range s.Label {
			label[k] = x
		}
		v["label"] = label
	}
	return v
}

// name is the revision chosen, "" when there is no selection.
func (s *Selection) name() string {
	if s == nil {
		return ""
	}
	return s.Name
}

// lead returns d's reasons and warnings led by the selection's, in new slices.
func (s *Selection) lead(reasons, warnings []string) ([]string, []string) {
	if s == nil {
		return reasons, warnings
	}
	return append(append([]string{}, s.Reasons...), reasons...), append(append([]string{}, s.Warnings...), warnings...)
}
