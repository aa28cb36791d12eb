#!/usr/bin/env bash
# Install the Debian packages the project runs on the host, once: a container engine
# (docker.io's dockerd, containerd and runc, also the kubelet's runtime), CNI plugins,
# debootstrap for locally made base images, and Prometheus (promtool) for the tests.
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v prometheus >/dev/null || need+=(prometheus)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
command -v openssl >/dev/null || need+=(openssl)
command -v conntrack >/dev/null || need+=(conntrack)
command -v socat >/dev/null || need+=(socat)
command -v ipset >/dev/null || need+=(ipset)  # kube-router's NetworkPolicy firewall
command -v gcc >/dev/null || need+=(gcc libc6-dev)  # the pause image is compiled here
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo ">> installing Debian packages: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
