package workload

import (
	"bytes"
	"encoding/json"
)

// Metadata is what the webhook reads of a pod without decoding it: its names and its controller.
type Metadata struct {
	Name         string `json:"name"`
	GenerateName string `json:"generateName"`
	// Controller is the owner reference marked controller, if any.
	Controller *Reference `json:"-"`
}

// Reference is an owner reference.
type Reference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
	Controller *bool  `json:"controller"`
}

// MetadataOf reads a pod's metadata from its JSON, decoding only the metadata object and skipping
// the other top-level fields: the apiserver sends metadata before the spec, so a large spec is
// scanned at most once and never decoded. Anything unreadable yields what was read so far.
func MetadataOf(raw []byte) Metadata {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return Metadata{}
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return Metadata{}
		}
		if key != "metadata" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return Metadata{}
			}
			continue
		}
		var meta struct {
			Metadata
			OwnerReferences []Reference `json:"ownerReferences"`
		}
		if dec.Decode(&meta) != nil {
			return Metadata{}
		}
		for i, ref := range meta.OwnerReferences {
			if ref.Controller != nil && *ref.Controller {
				meta.Metadata.Controller = &meta.OwnerReferences[i]
				break
			}
		}
		return meta.Metadata
	}
	return Metadata{}
}
