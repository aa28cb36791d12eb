#!/usr/bin/env bash
# Make the base image locally (no registry can be reached): debootstrap a minimal Debian
# with Python, import it into Docker as ludus-base:<suite>. Cached as a tarball keyed by
# the suite and the package list, so a new machine builds it once.
set -euo pipefail
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=python3,python3-venv,ca-certificates,tini
tag=ludus-base:$suite
cache=${LUDUS_CACHE_DIR:-$HOME/.cache/ludus}/images
key=$(echo "$suite $packages" | sha256sum | cut -c1-12)
tarball=$cache/ludus-base-$suite-$key.tar
if docker image inspect "$tag" >/dev/null 2>&1 && [ "$(docker image inspect -f '{{index .Config.Labels "ludus.key"}}' "$tag")" = "$key" ]; then
  exit 0
fi
mkdir -p "$cache"
if [ ! -f "$tarball" ]; then
  echo ">> debootstrap $suite (first time only)" >&2
  root=$(mktemp -d)
  debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$root"
fi
docker import --change "LABEL ludus.key=$key" --change 'CMD ["/bin/bash"]' "$tarball" "$tag" >/dev/null
echo ">> $tag ready" >&2
