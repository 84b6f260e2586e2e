package main

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// spdxMediaType is the media type of an SPDX document in JSON, the SBOM's.
const spdxMediaType = "application/spdx+json"

// The subset of SPDX 2.3 (https://spdx.github.io/spdx-spec/v2.3/) an SBOM of a Go binary needs.
type (
	spdxDocument struct {
		SPDXVersion       string             `json:"spdxVersion"`
		DataLicense       string             `json:"dataLicense"`
		SPDXID            string             `json:"SPDXID"`
		Name              string             `json:"name"`
		DocumentNamespace string             `json:"documentNamespace"`
		CreationInfo      spdxCreationInfo   `json:"creationInfo"`
		Packages          []spdxPackage      `json:"packages"`
		Relationships     []spdxRelationship `json:"relationships"`
	}
	spdxCreationInfo struct {
		Created  string   `json:"created"`
		Creators []string `json:"creators"`
	}
	spdxPackage struct {
		SPDXID                string            `json:"SPDXID"`
		Name                  string            `json:"name"`
		VersionInfo           string            `json:"versionInfo"`
		DownloadLocation      string            `json:"downloadLocation"`
		FilesAnalyzed         bool              `json:"filesAnalyzed"`
		Checksums             []spdxChecksum    `json:"checksums,omitempty"`
		ExternalRefs          []spdxExternalRef `json:"externalRefs,omitempty"`
		PrimaryPackagePurpose string            `json:"primaryPackagePurpose,omitempty"`
		Comment               string            `json:"comment,omitempty"`
	}
	spdxChecksum struct {
		Algorithm     string `json:"algorithm"`
		ChecksumValue string `json:"checksumValue"`
	}
	spdxExternalRef struct {
		ReferenceCategory string `json:"referenceCategory"`
		ReferenceType     string `json:"referenceType"`
		ReferenceLocator  string `json:"referenceLocator"`
	}
	spdxRelationship struct {
		SPDXElementID      string `json:"spdxElementId"`
		RelationshipType   string `json:"relationshipType"`
		RelatedSPDXElement string `json:"relatedSpdxElement"`
	}
)

// sbom describes a Go binary from the build information the linker put in it (what `go version -m`
// prints): the main package at version, with the binary's SHA-256 and its build settings, the Go
// standard library at the toolchain's version, and every module linked in, as replaced. The same
// binary and inputs give the same bytes.
func sbom(binary []byte, version, source string, created time.Time) ([]byte, error) {
	info, err := buildinfo.Read(bytes.NewReader(binary))
	if err != nil {
		return nil, fmt.Errorf("read build information: %w", err)
	}
	sum := sha256.Sum256(binary)
	goos, goarch := setting(info, "GOOS"), setting(info, "GOARCH")
	ids := map[string]bool{}
	id := func(name, version string) string {
		base := "SPDXRef-Package-" + strings.Trim(spdxIDUnsafe.ReplaceAllString(name+"-"+version, "-"), "-")
		s := base
		for n := 2; ids[s]; n++ {
			s = fmt.Sprintf("%s-%d", base, n)
		}
		ids[s] = true
		return s
	}

	settings := make([]string, 0, len(info.Settings))
	for _, s := range info.Settings {
		settings = append(settings, s.Key+"="+s.Value)
	}
	main := spdxPackage{
		SPDXID:                id(info.Path, version),
		Name:                  info.Path,
		VersionInfo:           version,
		DownloadLocation:      source,
		Checksums:             []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: hex.EncodeToString(sum[:])}},
		ExternalRefs:          []spdxExternalRef{purl(info.Path, version)},
		PrimaryPackagePurpose: "APPLICATION",
		Comment:               "go build settings: " + strings.Join(settings, " "),
	}
	goVersion := strings.TrimPrefix(info.GoVersion, "go")
	std := spdxPackage{
		SPDXID:           id("stdlib", goVersion),
		Name:             "stdlib",
		VersionInfo:      goVersion,
		DownloadLocation: "https://go.dev/dl/",
		ExternalRefs:     []spdxExternalRef{purl("stdlib", goVersion)},
		Comment:          "the Go standard library and runtime of " + info.GoVersion,
	}
	doc := spdxDocument{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              fmt.Sprintf("rego-injector %s %s/%s", version, goos, goarch),
		DocumentNamespace: fmt.Sprintf("%s/spdx/%s-%s/%s", strings.TrimSuffix(source, "/"), goos, goarch, hex.EncodeToString(sum[:])),
		CreationInfo: spdxCreationInfo{
			Created:  created.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: rego-injector-imagebuild"},
		},
		Packages: []spdxPackage{main, std},
		Relationships: []spdxRelationship{
			{"SPDXRef-DOCUMENT", "DESCRIBES", main.SPDXID},
			{main.SPDXID, "DEPENDS_ON", std.SPDXID},
		},
	}
	for _, dep := range info.Deps {
		if dep.Replace != nil {
			dep = dep.Replace
		}
		p := spdxPackage{
			SPDXID:           id(dep.Path, dep.Version),
			Name:             dep.Path,
			VersionInfo:      dep.Version,
			DownloadLocation: "NOASSERTION",
			ExternalRefs:     []spdxExternalRef{purl(dep.Path, dep.Version)},
		}
		if dep.Sum != "" {
			p.Comment = "go.sum " + dep.Sum
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{main.SPDXID, "DEPENDS_ON", p.SPDXID})
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// spdxIDUnsafe matches what an SPDX identifier may not hold.
var spdxIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// purl is the package URL of a Go module (https://github.com/package-url/purl-spec).
func purl(path, version string) spdxExternalRef {
	return spdxExternalRef{
		ReferenceCategory: "PACKAGE-MANAGER",
		ReferenceType:     "purl",
		ReferenceLocator:  "pkg:golang/" + path + "@" + strings.ReplaceAll(version, "+", "%2B"),
	}
}

// setting is a build setting of the binary ("" when it has none).
func setting(info *buildinfo.BuildInfo, key string) string {
	for _, s := range info.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}
