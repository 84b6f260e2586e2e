package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"

	"github.com/rego-injector/rego-injector/engine/manifest"
)

// errDenied makes check exit 1 once its report is written.
var errDenied = errors.New("check failed")

func checkCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	var o offlineFlags
	var paths listFlag
	fs.Var(&paths, "f", "manifest file, directory (its .yaml, .yml and .json files, recursively) or - for standard input; repeatable (required)")
	o.register(fs, false)
	output := fs.String("o", "text", "output format: text, json or junit")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if !slices.Contains([]string{"text", "json", "junit"}, *output) {
		return fmt.Errorf("%w: -o %q: want text, json or junit", errUsage, *output)
	}
	if len(paths) == 0 {
		return fmt.Errorf("%w: -f PATH is required (- reads standard input)", errUsage)
	}
	p, err := o.processor(ctx, stderr)
	if err != nil {
		return err
	}
	all := p.CheckPaths(ctx, paths, stdin)
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
	refused, failed := manifest.Tally(all)
	switch {
	case failed > 0:
		return fmt.Errorf("%w: %d of %d workloads refused; %d files or documents could not be checked", errDenied, refused, len(all)-failed, failed)
	case refused > 0:
		return fmt.Errorf("%w: %d of %d workloads refused", errDenied, refused, len(all))
	}
	return nil
}
