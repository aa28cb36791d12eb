#!/usr/bin/env bash
# Say at the start, with numbers, when the disk cannot hold a run, instead of failing later with
# "No space left on device" in the middle of an install or an image import. A first run on a fresh
# machine peaks at about 30 GB (torch's virtual environment 5 GB, the Go build caches 15 GB while the
# binaries build, the 5 GB trainer image in Docker and once more in each real node's containerd).
# Below LUDUS_DISK_FLOOR_GB not even the virtual environment fits: that fails here; below
# LUDUS_DISK_WARN_GB it only warns, since a warm machine needs much less.
set -euo pipefail
cd "$(dirname "$0")/.."
warn_gb=${LUDUS_DISK_WARN_GB:-30}
floor_gb=${LUDUS_DISK_FLOOR_GB:-6}
free_gb=$(df -Pk . | awk 'NR == 2 { print int($4 / 1048576) }')
mount=$(df -P . | awk 'NR == 2 { print $6 }')
if (( free_gb >= warn_gb )); then exit 0; fi
echo "!! $free_gb GB free on $mount: a first run needs about 30 GB, a warm one about 8" >&2
echo "   what Ludus keeps on this disk:" >&2
state=${LUDUS_NODE_STATE:-/var/lib/ludus}
for path in .venv "${LUDUS_CACHE_DIR:-$HOME/.cache/ludus}" "$state" /var/lib/docker; do
  [ -e "$path" ] && echo "     $(du -xsh "$path" 2>/dev/null | cut -f1)	$path" >&2
done
echo "   make clean-node-state drops the real nodes' image stores (imported again when next needed)" >&2
if (( free_gb < floor_gb )); then
  echo "!! fewer than $floor_gb GB: stopping before the install fails half-way" >&2
  exit 1
fi
