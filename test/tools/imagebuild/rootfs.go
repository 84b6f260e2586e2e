package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user the image runs as, the one distroless calls nonroot; the Deployment asks for it too.
const (
	nonrootID = 65532
	user      = "65532:65532"
)

// Where the binary and its SBOM are in the image.
const (
	binaryPath = "/usr/local/bin/rego-injector"
	sbomPath   = "/usr/local/share/rego-injector/sbom.spdx.json"
)

// The files of distroless/static that a static Go binary can use, and none of its others: no CA
// certificates (the binary carries Mozilla's roots, cmd/rego-injector/roots.go), no tzdata (Go's
// time package reads none for UTC, and the server logs in UTC), no os-release (this is no
// distribution).
const (
	passwd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`
	group = `root:x:0:
nobody:x:65534:
nonroot:x:65532:
`
	// Go's resolver reads the hosts line: /etc/hosts first, then DNS, as the C library would.
	nsswitch = `passwd: files
group: files
hosts: files dns
networks: files
protocols: files
services: files
`
)

// entry is one file or directory of a layer.
type entry struct {
	path string // absolute; a directory's without a trailing slash
	mode int64  // permission bits, with the sticky bit for /tmp
	id   int    // uid and gid
	dir  bool
	body []byte
}

// baseEntries is the layer under the binary, the same for every platform: users, groups, name
// service switch, the two home directories and a world-writable /tmp (to mount an emptyDir on when
// the root filesystem is read-only).
func baseEntries() []entry {
	return []entry{
		{path: "/etc", mode: 0o755, dir: true},
		{path: "/etc/group", mode: 0o644, body: []byte(group)},
		{path: "/etc/nsswitch.conf", mode: 0o644, body: []byte(nsswitch)},
		{path: "/etc/passwd", mode: 0o644, body: []byte(passwd)},
		{path: "/home", mode: 0o755, dir: true},
		{path: "/home/nonroot", mode: 0o700, id: nonrootID, dir: true},
		{path: "/root", mode: 0o700, dir: true},
		{path: "/tmp", mode: 0o1777, dir: true},
	}
}

// binaryEntries is the layer of one platform: the binary, its SBOM, and their directories.
func binaryEntries(binary, sbom []byte) []entry {
	return []entry{
		{path: "/usr", mode: 0o755, dir: true},
		{path: "/usr/local", mode: 0o755, dir: true},
		{path: "/usr/local/bin", mode: 0o755, dir: true},
		{path: binaryPath, mode: 0o755, body: binary},
		{path: "/usr/local/share", mode: 0o755, dir: true},
		{path: "/usr/local/share/rego-injector", mode: 0o755, dir: true},
		{path: sbomPath, mode: 0o644, body: sbom},
	}
}

// layer writes entries as a gzipped tar, the same bytes for the same entries and time: sorted by
// path, every time stamp mtime, no user or group names, no extended headers, gzip without a name
// or a time.
func layer(entries []entry, mtime time.Time) (v1.Layer, error) {
	entries = slices.Clone(entries)
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.path, b.path) })
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{
			Name:    strings.TrimPrefix(e.path, "/"),
			Mode:    e.mode,
			Uid:     e.id,
			Gid:     e.id,
			ModTime: mtime,
			Format:  tar.FormatUSTAR,
		}
		if e.dir {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", e.path, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
