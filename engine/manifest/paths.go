package manifest

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CheckPaths checks every manifest under paths as Check does: a file, "-" for stdin, or a directory,
// whose .yaml, .yml and .json files are read recursively in lexical order. A path or file that
// cannot be read, and a directory with no manifests, is reported as a Workload with Error set, and
// the other files are still checked. Every workload names its file in Source.
func (p *Processor) CheckPaths(ctx context.Context, paths []string, stdin io.Reader) []Workload {
	var all []Workload
	for _, path := range paths {
		files, err := manifestFiles(path)
		if err != nil {
			all = append(all, Workload{Source: path, Error: err.Error()})
			continue
		}
		for _, file := range files {
			all = append(all, p.checkFile(ctx, file, stdin)...)
		}
	}
	return all
}

func (p *Processor) checkFile(ctx context.Context, file string, stdin io.Reader) []Workload {
	in := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return []Workload{{Source: file, Error: err.Error()}}
		}
		defer f.Close()
		in = f
	}
	workloads, err := p.Check(ctx, in)
	if err != nil { // reported after the file's workloads checked before it
		workloads = append(workloads, Workload{Error: err.Error()})
	}
	for i := range workloads {
		workloads[i].Source = file
	}
	return workloads
}

// manifestFiles expands one path: a directory stands for its manifests.
func manifestFiles(path string) ([]string, error) {
	if path == "-" {
		return []string{path}, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var files []string
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
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("%s: no .yaml, .yml or .json files", path)
	}
	return files, err
}

// Tally counts the workloads policy refuses and the files or documents that could not be checked.
func Tally(workloads []Workload) (refused, failed int) {
	for _, wl := range workloads {
		switch {
		case wl.Error != "":
			failed++
		case wl.Denied():
			refused++
		}
	}
	return refused, failed
}
