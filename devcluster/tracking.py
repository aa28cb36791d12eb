"""The built-in experiment tracker: MLflow's tracking server (Apache-2.0; the pinned `mlflow` package in its
own virtual environment, built by build.sh into the binary cache) as one host process.

Its backend is a SQLite file and its artifacts a directory, both under `root`; it serves the artifacts
itself (`--serve-artifacts`), so a client needs only its URL: the trainer's pods reach it at the node
bridge's address (node.NODE_IP), this host at 127.0.0.1. It listens on all addresses.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from devcluster import processes
from devcluster.hostservice import HostService
from devcluster.paths import binary, free_port


@dataclass
class TrackingServer(HostService):
    """One MLflow tracking server under `root` (its database, artifacts, log and process record)."""

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.state()['port']}"

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url()}/health", timeout=2) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError, KeyError):
            return False

    def up(self) -> None:
        if self.is_up():
            return
        self.down()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "artifacts").mkdir(exist_ok=True)
        port = self.state().get("port") or free_port()
        python = binary("venv/bin/python")
        argv = [str(python), "-m", "mlflow", "server", "--host", "0.0.0.0", "--port", str(port),
                "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
                "--artifacts-destination", str(self.root / "artifacts"), "--serve-artifacts", "--workers", "1"]
        log = open(self.root / "mlflow.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self.state_file.write_text(json.dumps({"pid": proc.pid, "port": port}))
        self._wait_until_answering(proc, 120, f"MLflow's server (log: {self.root / 'mlflow.log'})")

    def down(self) -> None:
        """Stop it; its database and artifacts stay (a server started again serves the same runs)."""
        pid = self.state().get("pid")
        if pid:
            processes.stop(pid)
            processes.reap(pid)
        if self.state_file.exists():
            port = self.state().get("port")
            self.state_file.write_text(json.dumps({"port": port}))  # the same address when it comes back

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call of MLflow's REST API (what the tests read the runs back with)."""
        request = urllib.request.Request(f"{self.url()}/api/2.0/mlflow/{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read() or b"{}")

    def runs(self, experiment: str, filter_string: str = "") -> list[dict[str, Any]]:
        """The runs of an experiment (by name), each with its `tags` and `params` as dicts; [] without it."""
        try:
            found = self.api("GET", f"experiments/get-by-name?experiment_name={urllib.parse.quote(experiment)}")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return []
            raise
        body = {"experiment_ids": [found["experiment"]["experiment_id"]], "max_results": 1000}
        if filter_string:
            body["filter"] = filter_string
        runs = self.api("POST", "runs/search", body).get("runs", [])
        for run in runs:
            data = run.setdefault("data", {})
            run["tags"] = {t["key"]: t["value"] for t in data.get("tags") or []}
            run["params"] = {p["key"]: p["value"] for p in data.get("params") or []}
        return list(runs)

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """A metric's values by step."""
        out = self.api("GET", f"metrics/get-history?run_id={run_id}&metric_key={urllib.parse.quote(key)}"
                              "&max_results=25000")
        return sorted((int(m["step"]), float(m["value"])) for m in out.get("metrics", []))

    def artifact(self, run: dict[str, Any], path: str) -> bytes:
        """One artifact of a run, through the server's artifact proxy."""
        info = run["info"]
        url = (f"{self.url()}/api/2.0/mlflow-artifacts/artifacts/{info['experiment_id']}/{info['run_id']}"
               f"/artifacts/{path}")
        with urllib.request.urlopen(url, timeout=60) as answer:
            return bytes(answer.read())

    def model_versions(self, name: str) -> dict[str, dict[str, Any]]:
        """A registered model's versions by run ID, each with its `tags` as a dict and its `aliases`."""
        query = urllib.parse.quote(f"name = '{name}'")
        versions = self.api("GET", f"model-versions/search?filter={query}").get("model_versions", [])
        model = self.api("GET", f"registered-models/get?name={urllib.parse.quote(name)}")["registered_model"]
        aliases: dict[str, list[str]] = {}
        for alias in model.get("aliases") or []:
            aliases.setdefault(alias["version"], []).append(alias["alias"])
        return {v["run_id"]: {**v, "tags": {t["key"]: t["value"] for t in v.get("tags") or []},
                              "aliases": aliases.get(v["version"], [])} for v in versions}
