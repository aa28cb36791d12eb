"""The built-in S3-compatible object store: SeaweedFS (Apache-2.0; built from its pinned Go module by
build.sh) as one host process, master, volume server, filer and S3 gateway together.

Its S3 gateway listens on all addresses, so the trainer's pods on the real node reach it at the node
bridge's address (node.NODE_IP) and this host at 127.0.0.1. It has one identity, whose keys are made
when it first starts and kept with its data; `ObjectStore.credentials` hands them to what needs them
(a Secret in a job's namespace, a test).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass
from typing import Any

from devcluster import processes
from devcluster.hostservice import HostService
from devcluster.paths import binary, free_port

REGION = "us-east-1"


@dataclass
class ObjectStore(HostService):
    """One SeaweedFS under `root` (its data, its keys, its log and its process' record)."""

    def credentials(self) -> dict[str, str]:
        """The S3 identity's keys, made once per store (kept with its data)."""
        keys = self.root / "keys.json"
        if not keys.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            keys.write_text(json.dumps({"accessKey": f"LUDUS{secrets.token_hex(8).upper()}",
                                        "secretKey": secrets.token_urlsafe(30)}))
            keys.chmod(0o600)
        data: dict[str, str] = json.loads(keys.read_text())
        return data

    def endpoint(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.state()['ports']['s3']}"

    def _answers(self) -> bool:
        try:
            self.filesystem().ls("")
        except Exception:  # noqa: BLE001 - not serving yet, whatever the client says
            return False
        return True

    def up(self) -> None:
        if self.is_up():
            return
        self.down()
        keys = self.credentials()
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "ludus", "credentials": [{"accessKey": keys["accessKey"], "secretKey": keys["secretKey"]}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        config.chmod(0o600)
        names = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc",
                 "s3_iceberg", "s3_lance", "metrics")
        ports = {name: free_port() for name in names}
        argv = [
            str(binary("weed")), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=0.0.0.0",
            f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume_grpc']}", "-volume.max=64",
            "-master.volumeSizeLimitMB=256", "-filer", f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer_grpc']}", "-s3", f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={ports['s3_grpc']}", f"-s3.port.iceberg={ports['s3_iceberg']}",
            f"-s3.port.lance={ports['s3_lance']}", f"-metricsPort={ports['metrics']}", f"-s3.config={config}",
        ]
        log = open(self.root / "weed.log", "ab")
        # The master keeps its state in a directory named after its port, which is new at every start: over
        # the data of an earlier start its volume servers then report another topology id, and the master
        # freezes volume growth "after master state loss" (a new bucket could never be written; `make demo`
        # after the tests failed on it). One process, one disk: there is no other master to disagree with.
        env = {**os.environ, "WEED_MASTER_VOLUME_GROWTH_FREEZE_ON_TOPOLOGY_MISMATCH": "false"}
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        self.state_file.write_text(json.dumps({"pid": proc.pid, "ports": ports}))
        self._wait_until_answering(proc, 90, f"SeaweedFS's S3 gateway (log: {self.root / 'weed.log'})")

    def down(self) -> None:
        pid = self.state().get("pid")
        if pid:
            processes.stop(pid)
            processes.reap(pid)
        self.state_file.unlink(missing_ok=True)

    def filesystem(self, secret: str | None = None) -> Any:
        """An s3fs client for this store, as this host reaches it (`secret` replaces the real one)."""
        import s3fs

        keys = self.credentials()
        return s3fs.S3FileSystem(key=keys["accessKey"], secret=secret or keys["secretKey"],
                                 endpoint_url=self.endpoint(), client_kwargs={"region_name": REGION},
                                 skip_instance_cache=True)

    def make_bucket(self, name: str) -> None:
        fs = self.filesystem()
        if not fs.exists(name):
            fs.mkdir(name)

    def secret(self, name: str, *, secret_key: str | None = None) -> dict[str, Any]:
        """A Secret with the keys a job's `checkpoint.secretRef` names (`secret_key` replaces the real one)."""
        keys = self.credentials()
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
                "stringData": {"AWS_ACCESS_KEY_ID": keys["accessKey"],
                               "AWS_SECRET_ACCESS_KEY": secret_key or keys["secretKey"]}}

    def environment(self, host: str = "127.0.0.1") -> dict[str, str]:
        """What a trainer needs to reach the store: the variables a job's checkpoint Secret supplies."""
        keys = self.credentials()
        return {"AWS_ACCESS_KEY_ID": keys["accessKey"], "AWS_SECRET_ACCESS_KEY": keys["secretKey"],
                "AWS_REGION": REGION, "LUDUS_S3_ENDPOINT": self.endpoint(host)}
