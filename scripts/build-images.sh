#!/usr/bin/env bash
# Build ludus-trainer:latest and/or ludus-operator:latest on the local base image.
# Wheels come from the wheelhouse cache, served to the build on loopback: nothing is
# downloaded, and the 2.6 GB of torch wheels never enter the build context.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
wheelhouse=${WHEELHOUSE:-${LUDUS_CACHE_DIR:-$HOME/.cache/ludus}/wheelhouse}
docker info >/dev/null 2>&1 || { echo "no container engine answers: make host starts one" >&2; exit 1; }
scripts/base-image.sh
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$wheelhouse" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
build() {  # build <tag> <dockerfile>
  echo ">> building $1" >&2
  docker build --quiet --network host --build-arg "WHEELHOUSE_URL=http://127.0.0.1:$port/" -t "$1" -f "$2" . >/dev/null
}
pause() {  # Kubernetes' pause.c from the pinned module, compiled static, in an image FROM scratch
  local src ctx
  source devcluster/versions.env
  src=${LUDUS_CACHE_DIR:-$HOME/.cache/ludus}/bin/pause-src-$KUBERNETES_VERSION/pause.c  # devcluster/build.sh
  [ -f "$src" ] || { echo "no $src: make cluster-binaries first" >&2; exit 1; }
  ctx=$(mktemp -d)
  gcc -Os -static -DVERSION=ludus -o "$ctx/pause" "$src"
  cp devcluster/pause/Dockerfile "$ctx/"
  echo ">> building ludus.local/pause:3.10" >&2
  docker build --quiet -t ludus.local/pause:3.10 "$ctx" >/dev/null
  rm -rf "$ctx"
}
case $which in
  pause) pause ;;
  trainer) build ludus-trainer:latest trainer_image/Dockerfile ;;
  operator) build ludus-operator:latest operator/Dockerfile ;;
  all) build ludus-trainer:latest trainer_image/Dockerfile; build ludus-operator:latest operator/Dockerfile; pause ;;
  *) echo "usage: $0 [trainer|operator|pause|all]" >&2; exit 2 ;;
esac
# Each rebuild leaves the previous image's layers dangling; a 5 GB torch image a time fills disks.
docker image prune -f >/dev/null 2>&1 || true
