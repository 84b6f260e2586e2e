package manifest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// junitSuites is the JUnit XML report CI systems display: one test suite, one test case per
// workload, a failure for each workload policy refuses.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr,omitempty"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Error     *junitFailure `xml:"error,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the workloads as a JUnit XML report: a workload is a passing test case unless
// policy denies it, or a skipped one when it has no pod template to inject; its decision, note,
// reasons and warnings are the case's output.
func WriteJUnit(w io.Writer, workloads []Workload) error {
	suite := junitSuite{Name: "rego-injector check", Tests: len(workloads)}
	for _, wl := range workloads {
		if wl.Error != "" {
			suite.Errors++
			suite.Cases = append(suite.Cases, junitCase{Name: wl.Source, Classname: wl.Source,
				Error: &junitFailure{Message: wl.Error, Type: "not checked", Text: wl.Error}})
			continue
		}
		name := wl.Name
		if name == "" {
			name = "(unnamed)"
		}
		class := wl.Namespace
		if wl.Source != "" {
			class = wl.Source
		}
		c := junitCase{Name: fmt.Sprintf("%s/%s in namespace %s (document %d)", wl.Kind, name, wl.Namespace, wl.Document), Classname: class}
		var text strings.Builder
		if err := WriteText(&text, []Workload{wl}); err != nil {
			return err
		}
		c.SystemOut = text.String()
		if wl.Skipped {
			c.Skipped = &junitSkipped{Message: wl.Note}
			suite.Skipped++
		}
		if wl.Denied() {
			deny := wl.Decision.Deny
			kind := "injection policy"
			if len(deny) == 0 {
				deny, kind = wl.Validation.Deny, "validating policy"
			}
			c.Failure = &junitFailure{Message: strings.Join(deny, "; "), Type: "denied by the " + kind, Text: text.String()}
			suite.Failures++
		}
		suite.Cases = append(suite.Cases, c)
	}
	out := junitSuites{Name: suite.Name, Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors, Suites: []junitSuite{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
