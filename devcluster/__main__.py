"""`python -m devcluster up|down|status`: what `make cluster-up` and `make cluster-down` run."""

from __future__ import annotations

import argparse
import sys

from devcluster import claim
from devcluster.cluster import Cluster


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster")
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--with-node", action="store_true", help="also start the real node (kubelet, containerd)")
    parser.add_argument("--nodes", type=int, default=1, help="real nodes to start with --with-node (each its own "
                        "kubelet, containerd, bridge and pod subnet)")
    args = parser.parse_args()
    cluster = Cluster.default()
    if args.action == "up":
        held = claim.current_claim(cluster.root)
        if held is not None:
            print(f"refusing to start or take over the cluster: {claim.in_use_message(cluster.root, held)}",
                  file=sys.stderr)
            return 3
        cluster.up()
        if args.with_node:
            from devcluster.node import RealNode

            for index in range(args.nodes):
                RealNode(cluster, index).up()
    elif args.action == "down":
        cluster.down()
    else:
        up = cluster.is_up()
        print(f"cluster {'running' if up else 'not running'}; KUBECONFIG={cluster.kubeconfig}")
        return 0 if up else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
