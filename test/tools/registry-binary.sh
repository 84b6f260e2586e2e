#!/usr/bin/env bash
# Builds the CNCF distribution registry the OCI bundle tests run once per machine, into a cache
# outside the repository keyed by its version and the platform, and prints the binary's path. The
# build runs under a lock and is marked complete atomically, so an interrupted build is redone and
# concurrent callers wait.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=$(cd "$here/registry" && go list -m -f '{{.Version}}' github.com/distribution/distribution/v3)
[ -n "$version" ] || { echo "cannot read the pinned registry version" >&2; exit 1; }
platform=$(go env GOOS)-$(go env GOARCH)
cache=${REGO_INJECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rego-injector}
dir=$cache/registry-$version-$platform

if [ -f "$dir/.complete" ]; then
  echo "$dir/registry"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$dir/.complete" ]; then
  echo "$dir/registry"
  exit 0
fi

tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "building the distribution registry $version"
start=$SECONDS
(cd "$here/registry" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath \
  -ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=$version" \
  -o "$tmp/registry" github.com/distribution/distribution/v3/cmd/registry)
log "built the registry in $((SECONDS - start)) s"

"$tmp/registry" --version >&2
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir/registry"
