package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/haproxy-sidecar/haproxy-sidecar/manifest"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

func newMigrateCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		manifests  []string
		output     string
		controller string
	)
	cmd := &cobra.Command{
		Use:   "migrate --manifests PATH [--manifests PATH...] [--output text|json]",
		Short: "Report what --annotations-compat nginx makes of ingress-nginx's annotations",
		Long: `For each Ingress and each nginx.ingress.kubernetes.io annotation on it: honoured (as which
haproxy-sidecar.io annotation), honoured with a difference, overridden, unsupported (what
traffic loses) or invalid. Exit status: 0 (a report), 1 unreadable input, 2 usage error.`,
		Example: `  kubectl get ingress,svc,secret,ingressclass -A -o yaml > cluster.yaml
  haproxy-sidecar migrate --manifests cluster.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return result(migrateCommand(cmd, manifests, output, controller, args, stdout, stderr))
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&manifests, "manifests", nil, "file or directory of Kubernetes YAML/JSON manifests (required; repeat for more)")
	fs.StringVar(&output, "output", "text", "text or json")
	fs.StringVar(&controller, "controller-name", render.DefaultControllerName, "spec.controller of the IngressClasses that would serve the Ingresses (the report notes Ingresses none of them selects)")
	return cmd
}

// migrateCommand reports, offline, what --annotations-compat nginx makes of
// the ingress-nginx annotations on the Ingresses in --manifests (e.g.
// `kubectl get ingress,svc,secret -A -o yaml` output). It is a report:
// exit status 0 whatever it finds, 1 when the input cannot be read, 2 for
// a usage error.
func migrateCommand(cmd *cobra.Command, manifests []string, output, controller string, args []string, stdout, stderr io.Writer) int {
	if len(manifests) == 0 || len(args) > 0 {
		return usageFailure(stderr, cmd, "--manifests is required, and nothing else is an argument")
	}
	if output != "text" && output != "json" {
		return usageFailure(stderr, cmd, "--output: %q: want text or json", output)
	}
	var in render.Inputs
	seen := map[string]bool{}
	unreadable := false
	for _, path := range manifests {
		part, problems, err := manifest.Load(path)
		if err != nil {
			fmt.Fprintf(stderr, "migrate: %v\n", err)
			return 1
		}
		for _, p := range problems {
			// Only what makes the report incomplete is worth saying: a
			// file or document that could not be read.
			if p.Reason == render.FileUnreadable || p.Reason == render.FileInvalid || p.Reason == render.FileNotFound {
				fmt.Fprintf(stderr, "%s [%s]\n", p.Report(), p.Reason)
				unreadable = true
			}
		}
		for _, ing := range part.Ingresses {
			// The same Ingress in two snapshots is reported once, as
			// first given.
			if key := ing.Namespace + "/" + ing.Name; !seen[key] {
				seen[key] = true
				in.Ingresses = append(in.Ingresses, ing)
			}
		}
		// htpasswd Secrets: the report names users HAProxy cannot check.
		in.Secrets = append(in.Secrets, part.Secrets...)
		in.IngressClasses = append(in.IngressClasses, part.IngressClasses...)
	}
	report := render.MigrationReport(in, controller)
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return 1
		}
	} else if _, err := io.WriteString(stdout, report.Text()); err != nil {
		return 1
	}
	if unreadable {
		fmt.Fprintln(stderr, "migrate: some input could not be read; the report leaves it out")
		return 1
	}
	return 0
}
