#!/usr/bin/env bash
# Build the pinned control-plane binaries from the Go module proxy, once.
# Each set lands in $LUDUS_CACHE_DIR/bin/<component>-<version>/ and is reused
# after that; the versions below are the cache keys. Go's module and build
# caches live in a scratch directory for this run only and go with it: the
# binaries are what is kept, and the caches (15 GB for this set) would
# otherwise stay on a disk that the node images and the tests need.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.env"
cache=${LUDUS_CACHE_DIR:-$HOME/.cache/ludus}/bin
mkdir -p "$cache"
export CGO_ENABLED=0 GOFLAGS=-trimpath
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ludus-go.XXXXXX")
export GOCACHE="$scratch/build" GOMODCACHE="$scratch/mod"
trap 'go clean -modcache >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT

build() {  # build <dir-name> <command...>: runs the command with $out set, then publishes atomically
  local name=$1; shift
  local final="$cache/$name" out="$cache/$name.tmp"
  if [ -d "$final" ]; then return 0; fi
  echo ">> building $name (first time only)" >&2
  rm -rf "$out"; mkdir -p "$out"
  out=$out "$@"
  mv "$out" "$final"
}

k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1"
  k8s_ldflags+=" -X $pkg.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean"
done

build "kubernetes-$KUBERNETES_VERSION-2" bash -c "cd '$here/gomod/kubernetes' && go build -ldflags '$k8s_ldflags' -o \"\$out/\" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kube-proxy"
# Kubernetes' pause.c from the same module, for the pause image (scripts/build-images.sh compiles it).
build "pause-src-$KUBERNETES_VERSION" bash -c "cd '$here/gomod/kubernetes' && \
  cp \"\$(go mod download -json k8s.io/kubernetes | sed -n 's/^\t\"Dir\": \"\(.*\)\",\$/\1/p')/build/pause/linux/pause.c\" \"\$out/\""
build "etcd-$ETCD_VERSION" bash -c "cd '$here/gomod/etcd' && go build -ldflags '-s -w' -o \"\$out/etcd\" go.etcd.io/etcd/server/v3"
# patched_source <module@version> <name>: a writable copy of a pinned module with patches/<name>-*.patch
# applied, printed as a path (the module cache itself is read-only).
patched_source() {
  set -euo pipefail
  local src dir
  src=$(mktemp -d)
  dir=$(cd "$src" && go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || { echo "could not download $1" >&2; return 1; }
  cp -r "$dir/." "$src/" && chmod -R u+w "$src"
  for p in "$here/patches/$2"-*.patch; do (cd "$src" && patch -p1 --quiet < "$p") >&2; done
  echo "$src"
}
# kwok with our patches: its fake kubelet deleted pods by name, so a late delete could remove a
# replacement pod of the same name (see patches/).
kwok_build() {
  set -euo pipefail
  local src
  src=$(patched_source "sigs.k8s.io/kwok@$KWOK_VERSION" kwok)
  (cd "$src" && go build -ldflags '-s -w' -o "$out/kwok" ./cmd/kwok)
  rm -rf "$src"
}
export -f patched_source kwok_build; export here KWOK_VERSION
build "kwok-$KWOK_VERSION-p$KWOK_PATCHES" bash -c kwok_build
build "coredns-$COREDNS_VERSION" bash -c "GOBIN=\"\$out\" go install -ldflags '-s -w' github.com/coredns/coredns@$COREDNS_VERSION"
build "helm-$HELM_VERSION" bash -c "GOBIN=\"\$out\" go install \
  -ldflags '-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION' helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
build "local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION" bash -c "GOBIN=\"\$out\" go install -ldflags '-s -w' \
  github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION"
# The scheduler-plugins scheduler from its pinned module (its Kubernetes replaces are in our go.mod), and
# the PodGroup CRD from the same module, so the CRD always matches the scheduler.
build "scheduler-plugins-$SCHEDULER_PLUGINS_VERSION" bash -c "cd '$here/gomod/scheduler-plugins' && \
  go build -ldflags '-s -w' -o \"\$out/kube-scheduler-plugins\" sigs.k8s.io/scheduler-plugins/cmd/scheduler && \
  cp \"\$(go list -m -f '{{.Dir}}' sigs.k8s.io/scheduler-plugins)/manifests/coscheduling/crd.yaml\" \"\$out/podgroups-crd.yaml\""
# Kueue's controller from its pinned module with our patches applied (patches/kueue-*.patch: where a host
# process keeps its metrics certificate), and its CRDs and webhook configurations from the same module,
# so the objects always match the controller that serves them.
kueue_build() {
  set -euo pipefail
  local src
  src=$(patched_source "sigs.k8s.io/kueue@$KUEUE_VERSION" kueue)
  (cd "$src" && go build -ldflags '-s -w' -o "$out/kueue" ./cmd/kueue)
  mkdir -p "$out/crds"
  cp "$src"/config/components/crd/bases/*.yaml "$out/crds/"
  cp "$src/config/components/webhook/manifests.yaml" "$out/webhooks.yaml"
  rm -rf "$src"
}
export -f kueue_build; export KUEUE_VERSION
build "kueue-$KUEUE_VERSION-p$KUEUE_PATCHES" bash -c kueue_build
# kube-router from its pinned module with our patches applied (patches/kube-router-*.patch: one instance
# polices every real node of this host), run only as the real nodes' NetworkPolicy controller; our go.mod
# (devcluster/gomod/kube-router) raises its dependencies to patched releases, and a copy of it points the
# module at the patched source.
kube_router_build() {
  set -euo pipefail
  local src mod
  src=$(patched_source "github.com/cloudnativelabs/kube-router/v2@$KUBE_ROUTER_VERSION" kube-router)
  mod=$(mktemp -d)
  cp "$here/gomod/kube-router/"* "$mod/"
  (cd "$mod" && go mod edit -replace "github.com/cloudnativelabs/kube-router/v2=$src" && \
    go build -ldflags '-s -w' -o "$out/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router)
  rm -rf "$src" "$mod"
}
export -f kube_router_build; export KUBE_ROUTER_VERSION
build "kube-router-$KUBE_ROUTER_VERSION-d$KUBE_ROUTER_DEPS-p$KUBE_ROUTER_PATCHES" bash -c kube_router_build
# SeaweedFS from its pinned module (the object store's S3 gateway; about 4.5 minutes on 2 CPUs, once).
seaweedfs_build() {
  set -euo pipefail
  local src dir
  src=$(mktemp -d)
  dir=$(cd "$src" && go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" | \
    sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  cp -r "$dir/." "$src/" && chmod -R u+w "$src"
  (cd "$src" && go build -ldflags '-s -w' -o "$out/weed" ./weed)
  rm -rf "$src"
}
export -f seaweedfs_build; export SEAWEEDFS_VERSION
build "seaweedfs-$SEAWEEDFS_VERSION" bash -c seaweedfs_build
# MLflow's tracking server: a virtual environment with the pinned package from PyPI (run as venv/bin/python -m
# mlflow, so the moved venv needs no rewritten scripts).
build "mlflow-$MLFLOW_VERSION" bash -c "python3 -m venv \"\$out/venv\" && \
  \"\$out/venv/bin/python\" -m pip install --quiet --disable-pip-version-check 'mlflow==$MLFLOW_VERSION'"
echo "control-plane binaries ready in $cache" >&2
