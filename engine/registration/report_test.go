package registration

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestWriteTableAndJSON(t *testing.T) {
	s := State{
		Configurations: append(readConfigs(t, baseWebhooks), readConfigs(t, filepath.Join("testdata", "istio-sidecar-injector.yaml"))...),
		Namespaces:     []corev1.Namespace{namespace("shop", map[string]string{"istio-injection": "enabled"}), namespace("payments", map[string]string{"istio.io/rev": "stable"})},
	}
	r := Check(s)
	var table bytes.Buffer
	if err := WriteTable(&table, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"7 injector entries in 2 configurations (3 of rego-injector, 4 of Istio)\n",
		"OVERLAP  rego-injector/inject.rego-injector.io (rego-injector)\n    and  istio-sidecar-injector/namespace.sidecar-injector.istio.io (istio)\n" +
			"         both are called for any pod in a namespace labelled {istio-injection=enabled, kubernetes.io/metadata.name=any}\n" +
			"         namespaces where it happens now: shop\n",
		"both are called for a pod labelled {sidecar.istio.io/inject=true} in a namespace labelled {kubernetes.io/metadata.name=any}\n         no namespace has those labels now\n",
		"WARNING  namespace payments: istio.io/rev=stable: no injector entry takes this namespace",
		"\n5 overlaps: those pods would be injected twice, or by two injectors; 1 warning\n",
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("the table lacks\n%s\n---\n%s", want, table.String())
		}
	}
	var raw bytes.Buffer
	if err := WriteJSON(&raw, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Overlaps) != 5 || back.Overlaps[0].First.Webhook != "inject.rego-injector.io" || back.Overlaps[0].NamespaceLabels["istio-injection"] != "enabled" ||
		len(back.Overlaps[0].Namespaces) != 1 || len(back.Warnings) != 1 || len(back.Entries) != 7 {
		t.Errorf("JSON read back: %+v", back)
	}

	var clean bytes.Buffer
	if err := WriteTable(&clean, Check(State{Configurations: readConfigs(t, baseWebhooks)})); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(clean.String(), "\nno overlap among the 3 injector entries: no pod is sent to two of them; 0 warnings\n") {
		t.Errorf("table without overlaps:\n%s", clean.String())
	}
}
