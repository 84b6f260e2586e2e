package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rego-injector/rego-injector/engine/manifest"
)

// errDenied makes check exit 1 once its report is written.
var errDenied = errors.New("check failed")

func checkCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("check", flag.ContinueOnError)
	var o offlineFlags
	var paths listFlag
	flags.Var(&paths, "f", "manifest file, directory (its .yaml, .yml and .json files, recursively) or - for standard input; repeatable (required)")
	flags.StringVar(&o.namespace, "namespace", "default", "namespace of objects that name none")
	flags.StringVar(&o.labels, "namespace-labels", "", "labels every namespace carries, k=v,k2=v2 (ignored with --kubeconfig)")
	flags.StringVar(&o.kubeconfig, "kubeconfig", "", "read namespace labels from this cluster")
	o.bundles.register(flags, false)
	flags.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	output := flags.String("o", "text", "output format: text, json or junit")
	if err := parse(flags, args, stderr); err != nil {
		return err
	}
	if !slices.Contains([]string{"text", "json", "junit"}, *output) {
		return fmt.Errorf("%w: -o %q: want text, json or junit", errUsage, *output)
	}
	if len(paths) == 0 {
		return fmt.Errorf("%w: -f PATH is required (- reads standard input)", errUsage)
	}
	files, err := manifestFiles(paths)
	if err != nil {
		return err
	}
	o.file = "-" // the processor's own input is unused: check opens its files itself
	p, _, err := o.processor(ctx, stdin, stderr)
	if err != nil {
		return err
	}
	var all []manifest.Workload
	for _, file := range files {
		in := stdin
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		workloads, err := p.Check(ctx, in)
		if err != nil { // reported with the file's workloads, and the run goes on to the next file
			workloads = append(workloads, manifest.Workload{Error: err.Error()})
		}
		for i := range workloads {
			workloads[i].Source = file
		}
		all = append(all, workloads...)
	}
	switch *output {
	case "json":
		err = manifest.WriteJSON(stdout, all)
	case "junit":
		err = manifest.WriteJUnit(stdout, all)
	default:
		err = manifest.WriteText(stdout, all)
	}
	if err != nil {
		return err
	}
	denied, failed := 0, 0
	for _, wl := range all {
		switch {
		case wl.Error != "":
			failed++
		case wl.Denied():
			denied++
		}
	}
	switch {
	case failed > 0:
		return fmt.Errorf("%w: %d of %d workloads refused; %d files or documents could not be checked", errDenied, denied, len(all)-failed, failed)
	case denied > 0:
		return fmt.Errorf("%w: %d of %d workloads refused", errDenied, denied, len(all))
	}
	return nil
}

// manifestFiles expands paths: a directory stands for its .yaml, .yml and .json files, in lexical
// order, recursively.
func manifestFiles(paths []string) ([]string, error) {
	var files []string
	for _, path := range paths {
		if path == "-" {
			files = append(files, path)
			continue
		}
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, path)
			continue
		}
		err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".yaml", ".yml", ".json":
				if !d.IsDir() {
					files = append(files, p)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}
