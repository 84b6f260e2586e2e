package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/rego-injector/rego-injector/engine/registration"
	"github.com/rego-injector/rego-injector/engine/revisions"
)

const tagUsage = `rego-injector tag: names that point at a revision (docs/webhook-configurations.md).

Usage:
  rego-injector tag set TAG --revision R [--overwrite]  point TAG at revision R: the tags ConfigMap, then
                                                        the tag's webhook configuration
  rego-injector tag list [-o table|json]                every tag, its revision, the namespaces that use it
  rego-injector tag remove TAG [--force]                remove the tag's configuration, then its entry;
                                                        refused while namespaces use it, unless --force
  rego-injector tag generate TAG --revision R           print both as YAML, for GitOps; needs no cluster

Each takes --kubeconfig, --injector-namespace (default rego-injector-system), --service (default
rego-injector) and --webhook-configuration (default rego-injector: the tag's configuration copies
the clientConfig of its first entry).
`

// tagFlags are the flags every tag subcommand takes.
type tagFlags struct {
	kubeconfig, injectorNamespace, service, webhookConfiguration string
}

func (f *tagFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "the cluster (default $KUBECONFIG, or the pod's service account in a cluster)")
	fs.StringVar(&f.injectorNamespace, "injector-namespace", "rego-injector-system", "the injector's namespace: the tags ConfigMap is there, and it is never sent to the injector")
	fs.StringVar(&f.service, "service", "rego-injector", "the injector's Service, in --injector-namespace, when the configuration to copy from does not exist")
	fs.StringVar(&f.webhookConfiguration, "webhook-configuration", registration.MainConfiguration, "the MutatingWebhookConfiguration whose first entry's clientConfig (Service or URL, and caBundle) the tag's configuration copies")
}

func (f *tagFlags) client() (kubernetes.Interface, error) {
	cs, err := kubeClient(f.kubeconfig)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return nil, fmt.Errorf("%w: tag needs a cluster: give --kubeconfig or set $KUBECONFIG (tag generate needs none)", errUsage)
	}
	return cs, nil
}

func tagCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, tagUsage)
		return fmt.Errorf("%w: tag needs set, list, remove or generate", errUsage)
	}
	switch args[0] {
	case "set":
		return tagSet(ctx, args[1:], stdout, stderr)
	case "list":
		return tagList(ctx, args[1:], stdout, stderr)
	case "remove":
		return tagRemove(ctx, args[1:], stdout, stderr)
	case "generate":
		return tagGenerate(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, tagUsage)
		return nil
	default:
		fmt.Fprint(stderr, tagUsage)
		return fmt.Errorf("%w: unknown tag command %q", errUsage, args[0])
	}
}

// parseTag takes the TAG that comes first in args, then parses the flags after it.
func parseTag(fs *flag.FlagSet, args []string, stderr io.Writer) (string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if err := parse(fs, args, stderr); err != nil {
			return "", err
		}
		return "", fmt.Errorf("%w: %s needs a TAG before its flags", errUsage, fs.Name())
	}
	if err := parse(fs, args[1:], stderr); err != nil {
		return "", err
	}
	if err := registration.ValidateName(args[0]); err != nil {
		return "", fmt.Errorf("%w: %w", errUsage, err)
	}
	return args[0], nil
}

// parseTagRevision parses a TAG and flags of which --revision (given as revision) is required.
func parseTagRevision(fs *flag.FlagSet, args []string, stderr io.Writer, revision *string) (string, error) {
	tag, err := parseTag(fs, args, stderr)
	if err != nil {
		return "", err
	}
	if *revision == "" {
		return "", fmt.Errorf("%w: %s needs --revision", errUsage, fs.Name())
	}
	if err := registration.ValidateName(*revision); err != nil {
		return "", fmt.Errorf("%w: --revision: %w", errUsage, err)
	}
	return tag, nil
}

func tagSet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tag set", flag.ContinueOnError)
	var f tagFlags
	f.register(fs)
	revision := fs.String("revision", "", "the revision the tag points at (required)")
	overwrite := fs.Bool("overwrite", false, "point a tag that points at another revision at this one")
	tag, err := parseTagRevision(fs, args, stderr, revision)
	if err != nil {
		return err
	}
	cs, err := f.client()
	if err != nil {
		return err
	}
	cc, annotations, err := f.clientConfig(ctx, cs, stderr)
	if err != nil {
		return err
	}
	if *revision != revisions.DefaultRevision {
		routed, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{LabelSelector: revisions.RevisionLabel + "=" + *revision})
		if err == nil && len(routed.Items) == 0 {
			fmt.Fprintf(stderr, "note: no configuration routes revision %s itself (rego-injector certs --revisions %s writes one); make sure the injector serves it\n", *revision, *revision)
		}
	}
	res, err := registration.SetTag(ctx, cs, registration.TagOptions{
		Tag: tag, Revision: *revision, InjectorNamespace: f.injectorNamespace,
		ClientConfig: cc, Annotations: annotations, Overwrite: *overwrite,
	})
	if err != nil {
		return err
	}
	switch res.Previous {
	case "":
		fmt.Fprintf(stdout, "tag %s → revision %s (new)\n", tag, *revision)
	case *revision:
		fmt.Fprintf(stdout, "tag %s → revision %s (unchanged)\n", tag, *revision)
	default:
		fmt.Fprintf(stdout, "tag %s → revision %s (was %s)\n", tag, *revision, res.Previous)
	}
	fmt.Fprintf(stdout, "MutatingWebhookConfiguration/%s: %s\n", res.Configuration, res.Action)
	return nil
}

// clientConfig is what the tag's configuration copies: the first entry of --webhook-configuration,
// with its cert-manager annotation; without that configuration, the Service and no caBundle.
func (f *tagFlags) clientConfig(ctx context.Context, cs kubernetes.Interface, stderr io.Writer) (admissionregistrationv1.WebhookClientConfig, map[string]string, error) {
	main, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, f.webhookConfiguration, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		fmt.Fprintf(stderr, "note: MutatingWebhookConfiguration %s not found: the tag's configuration calls Service %s/%s without a caBundle until `rego-injector certs` or `serve --manage-certs` patches it\n",
			f.webhookConfiguration, f.injectorNamespace, f.service)
		return registration.ServiceClientConfig(f.service, f.injectorNamespace, nil), nil, nil
	}
	if err != nil {
		return admissionregistrationv1.WebhookClientConfig{}, nil, fmt.Errorf("read MutatingWebhookConfiguration %s: %w", f.webhookConfiguration, err)
	}
	if len(main.Webhooks) == 0 {
		return admissionregistrationv1.WebhookClientConfig{}, nil, fmt.Errorf("MutatingWebhookConfiguration %s has no entry to copy", f.webhookConfiguration)
	}
	var annotations map[string]string
	if v, ok := main.Annotations["cert-manager.io/inject-ca-from"]; ok {
		annotations = map[string]string{"cert-manager.io/inject-ca-from": v}
	}
	return main.Webhooks[0].ClientConfig, annotations, nil
}

func tagList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tag list", flag.ContinueOnError)
	var f tagFlags
	f.register(fs)
	output := fs.String("o", "table", "output format: table or json")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("%w: -o %q: want table or json", errUsage, *output)
	}
	cs, err := f.client()
	if err != nil {
		return err
	}
	tags, err := registration.ListTags(ctx, cs, f.injectorNamespace)
	if err != nil {
		return err
	}
	if *output == "json" {
		if tags == nil {
			tags = []registration.TagInfo{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(tags)
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TAG\tREVISION\tNAMESPACES")
	for _, t := range tags {
		rev := t.Revision
		switch {
		case rev == "":
			rev = "<not in " + revisions.TagsConfigMap + ">"
		case t.Configuration == "":
			rev += " (no configuration: not routed)"
		}
		namespaces := strings.Join(t.Namespaces, ",")
		if namespaces == "" {
			namespaces = "<none>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Tag, rev, namespaces)
	}
	return tw.Flush()
}

func tagRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tag remove", flag.ContinueOnError)
	var f tagFlags
	f.register(fs)
	force := fs.Bool("force", false, "remove the tag even though namespaces still use it (their pods then get no sidecar)")
	tag, err := parseTag(fs, args, stderr)
	if err != nil {
		return err
	}
	cs, err := f.client()
	if err != nil {
		return err
	}
	inUse, err := registration.RemoveTag(ctx, cs, f.injectorNamespace, tag, *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tag %s removed: MutatingWebhookConfiguration/%s and its entry in ConfigMap %s/%s\n",
		tag, registration.ConfigurationName(registration.Tag, tag), f.injectorNamespace, revisions.TagsConfigMap)
	if len(inUse) > 0 {
		fmt.Fprintf(stderr, "warning: these namespaces still name tag %s, their new pods get no sidecar: %s\n", tag, strings.Join(inUse, ", "))
	}
	return nil
}

func tagGenerate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tag generate", flag.ContinueOnError)
	var f tagFlags
	f.register(fs)
	revision := fs.String("revision", "", "the revision the tag points at (required)")
	caFile := fs.String("ca-bundle-file", "", "PEM file of the CA the apiserver trusts the injector with (absent: no caBundle, for cert-manager or the injector to patch in)")
	tag, err := parseTagRevision(fs, args, stderr, revision)
	if err != nil {
		return err
	}
	var ca []byte
	if *caFile != "" {
		if ca, err = os.ReadFile(*caFile); err != nil {
			return fmt.Errorf("read --ca-bundle-file: %w", err)
		}
	}
	cfg, err := registration.Configuration(registration.Tag, tag, registration.Options{
		ClientConfig:      registration.ServiceClientConfig(f.service, f.injectorNamespace, ca),
		InjectorNamespace: f.injectorNamespace,
	})
	if err != nil {
		return err
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "# Tag %s points at revision %s: this key joins the data of ConfigMap %s/%s (keep its other keys),\n", tag, *revision, f.injectorNamespace, revisions.TagsConfigMap)
	fmt.Fprintf(&out, "# and is applied before the configuration, so that the injector knows the tag before any pod names it.\n")
	for i, obj := range []any{registration.TagsConfigMap(f.injectorNamespace, map[string]string{tag: *revision}), cfg} {
		raw, err := yaml.Marshal(obj)
		if err != nil {
			return fmt.Errorf("tag generate: %w", err)
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(raw)
	}
	_, err = stdout.Write(out.Bytes())
	return err
}
