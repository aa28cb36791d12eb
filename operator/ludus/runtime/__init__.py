"""Everything that talks to the API server or the pods: the only folder that does I/O below `controller/`.

- `kube`: the async HTTP client (create-if-absent, patch, delete, list, watch);
- `podwatch`: the operator's own pod watch, indexed by job;
- `poller`: reads worker 0's metrics page of every Running job;
- `peering`: leadership between operator replicas;
- `credentials`: the service account's or kubeconfig's login;
- `workqueue`: the keyed, de-duplicating queue the workers drain;
- `metrics`: the operator's own Prometheus collectors;
- `fastjson`: orjson behind the JSON calls of the client;
- `settings`: what the operator was started with, and how Kopf is tuned.
"""
