package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/rego-injector/rego-injector/engine/certs"
	"github.com/rego-injector/rego-injector/engine/registration"
)

func certsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	var o certs.Options
	fs.StringVar(&o.Service, "service", "rego-injector", "the webhook's Service")
	fs.StringVar(&o.Namespace, "service-namespace", "rego-injector-system", "the Service's namespace, where the Secret goes")
	fs.StringVar(&o.Secret, "secret", "rego-injector-tls", "the TLS Secret the Deployment mounts")
	webhooks := fs.String("webhook-configurations", "rego-injector", "comma-separated names of the Mutating- and ValidatingWebhookConfigurations whose caBundle to patch")
	fs.DurationVar(&o.Validity, "validity", 365*24*time.Hour, "validity of a new serving certificate (the CA gets ten times as long)")
	fs.DurationVar(&o.RenewBefore, "renew-before", 30*24*time.Hour, "renew the serving certificate when it expires within this margin")
	fs.BoolVar(&o.Renew, "renew", false, "issue a new serving certificate now (the CA is kept)")
	fs.BoolVar(&o.RotateCA, "rotate-ca", false, "stage a new CA now: it joins the caBundle at once and signs the serving certificate from --ca-lead later, at the first run after that")
	fs.DurationVar(&o.CALead, "ca-lead", certs.DefaultCALead, "how long a new CA is in the caBundle before it signs the serving certificate")
	hosts := fs.String("hosts", "", "further comma-separated names or IP addresses the serving certificate covers")
	kubeconfig := fs.String("kubeconfig", "", "install into this cluster (absent: in-cluster config when running in a pod)")
	output := fs.String("secret-file", "", "write the Secret as YAML to this file (- for standard output) instead of installing it; the caBundle goes to standard error")
	revs := fs.String("revisions", "", "comma-separated revisions whose MutatingWebhookConfiguration (rego-injector-rev-NAME) to create or update, calling the Service with the caBundle")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	o.WebhookConfigurations = splitList(*webhooks)
	o.ExtraHosts = splitList(*hosts)
	revisionNames := splitList(*revs)
	for _, r := range revisionNames {
		if err := registration.ValidateName(r); err != nil {
			return fmt.Errorf("%w: --revisions: %w", errUsage, err)
		}
	}
	if *output != "" {
		if len(revisionNames) > 0 {
			return fmt.Errorf("%w: --revisions writes to a cluster, not with --secret-file", errUsage)
		}
		return writeSecret(o, *output, stdout, stderr)
	}
	cs, err := kubeClient(*kubeconfig)
	if err != nil {
		return err
	}
	if cs == nil {
		return fmt.Errorf("%w: no cluster: give --kubeconfig, or --secret-file FILE to write the Secret instead", errUsage)
	}
	res, err := certs.Ensure(ctx, cs, o)
	if err != nil {
		return err
	}
	if res.StagedCA {
		fmt.Fprintf(stdout, "secret %s/%s: new CA in the caBundle; it signs the serving certificate at the first run from %s on\n", o.Namespace, o.Secret, res.NextCAFrom.Local().Format(time.RFC3339))
	}
	if res.NewCA {
		fmt.Fprintf(stdout, "secret %s/%s: new CA signs the serving certificate\n", o.Namespace, o.Secret)
	}
	if !res.PreviousCAUntil.IsZero() {
		fmt.Fprintf(stdout, "secret %s/%s: the previous CA stays in the caBundle until %s\n", o.Namespace, o.Secret, res.PreviousCAUntil.Local().Format(time.RFC3339))
	}
	if res.Issued {
		fmt.Fprintf(stdout, "secret %s/%s: new serving certificate for %s\n", o.Namespace, o.Secret, strings.Join(certs.ServiceHosts(o.Service, o.Namespace), ", "))
	} else {
		fmt.Fprintf(stdout, "secret %s/%s: serving certificate still good, kept\n", o.Namespace, o.Secret)
	}
	for _, p := range res.Patched {
		fmt.Fprintf(stdout, "%s: caBundle patched\n", p)
	}
	if res.RoutingErr != nil {
		fmt.Fprintf(stderr, "warning: the webhook configurations of revisions and tags were not patched: %v\n", res.RoutingErr)
	}
	for _, r := range revisionNames {
		cfg, err := registration.Configuration(registration.Revision, r, registration.Options{
			ClientConfig:      registration.ServiceClientConfig(o.Service, o.Namespace, res.CABundle),
			InjectorNamespace: o.Namespace,
		})
		if err != nil {
			return err
		}
		action, err := registration.Apply(ctx, cs, cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "MutatingWebhookConfiguration/%s: %s\n", cfg.Name, action)
	}
	return nil
}

// writeSecret writes a new Secret as YAML, for clusters the command cannot reach.
func writeSecret(o certs.Options, path string, stdout, stderr io.Writer) error {
	var existing *corev1.Secret
	if path != "-" {
		if raw, err := os.ReadFile(path); err == nil {
			existing = &corev1.Secret{}
			if err := yaml.Unmarshal(raw, existing); err != nil {
				return fmt.Errorf("read the existing secret %s: %w", path, err)
			}
		}
	}
	secret, _, err := certs.Build(o, existing)
	if err != nil {
		return err
	}
	out, err := yaml.Marshal(secret)
	if err != nil {
		return err
	}
	if path == "-" {
		_, err = stdout.Write(out)
	} else {
		err = os.WriteFile(path, out, 0o600)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "caBundle: %s\n", base64.StdEncoding.EncodeToString(certs.Bundle(secret)))
	return nil
}
