#!/usr/bin/env bash
# Builds the control-plane binaries the end-to-end tests run (etcd, kube-apiserver,
# kube-controller-manager, kubectl) once per machine, into a cache outside the repository keyed by
# their versions and the platform, and prints the cache directory. Builds run under a lock and are
# marked complete atomically, so an interrupted build is redone and concurrent callers wait.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(cd "$here/k8s" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(cd "$here/etcd" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] || { echo "cannot read the pinned versions" >&2; exit 1; }
platform=$(go env GOOS)-$(go env GOARCH)
cache=${REGO_INJECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rego-injector}
dir=$cache/k8s-$k8s_version-etcd-$etcd_version-$platform

if [ -f "$dir/.complete" ]; then
  echo "$dir"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$dir/.complete" ]; then
  echo "$dir"
  exit 0
fi

tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

minor=${k8s_version#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z -X $p.gitCommit=$k8s_version"
done
export CGO_ENABLED=0 GOFLAGS=-mod=mod

for cmd in kubectl kube-controller-manager kube-apiserver; do
  log "building $cmd $k8s_version"
  start=$SECONDS
  (cd "$here/k8s" && go build -trimpath -ldflags "$ldflags" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  log "built $cmd in $((SECONDS - start)) s"
done
log "building etcd $etcd_version"
start=$SECONDS
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$etcd_version" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
log "built etcd in $((SECONDS - start)) s"

"$tmp/kube-apiserver" --version >&2
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
