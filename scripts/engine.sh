#!/usr/bin/env bash
# Make sure a container engine answers: containerd (shared with the kubelet) and dockerd on it.
# Started here as root when none runs; logs in /var/log/ludus.
set -euo pipefail
"$(dirname "$0")/host-packages.sh"
mkdir -p /var/log/ludus
if ! ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1; then
  echo ">> starting containerd" >&2
  setsid containerd >/var/log/ludus/containerd.log 2>&1 < /dev/null &
  for _ in $(seq 60); do ctr version >/dev/null 2>&1 && break; sleep 0.5; done
fi
if ! docker info >/dev/null 2>&1; then
  echo ">> starting dockerd" >&2
  setsid dockerd --containerd=/run/containerd/containerd.sock >/var/log/ludus/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
fi
docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/ludus/dockerd.log" >&2; exit 1; }
