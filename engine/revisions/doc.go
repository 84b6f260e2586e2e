// Package revisions picks, for each admission, which named bundle revision answers it: the
// revision a pod's or namespace's label names, directly or through a tag.
package revisions
