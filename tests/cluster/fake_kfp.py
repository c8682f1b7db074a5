"""A small stand-in for the Kubeflow Pipelines API server (v2beta1), the one service that cannot run here.

It answers just the endpoints ``kfp.Client`` calls for submit, schedule and upload, keeps what was created,
and records every request (method, path, query, headers, decoded body) so that tests assert what the real
client library sent: the pipeline spec, the parameters, the cron, the token. It validates like the real
server where that matters to kubenas: unknown experiment ids, duplicate version names, the 10,000-byte
parameter cap.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import yaml

API = "/apis/v2beta1"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: object = None
    files: dict[str, bytes] = field(default_factory=dict)


class FakeKfp:
    def __init__(self, multi_user: bool = False, token: str | None = None):
        self.multi_user = multi_user
        self.token = token  # when set, requests without "Bearer <token>" get 401 like an authenticating proxy
        self.requests: list[Request] = []
        self.experiments: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, list[dict]] = {}
        self.runs: dict[str, dict] = {}
        self.recurring: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeKfp:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calls(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == API + path]

    # ------------------------------------------------------------------ routing
    def _new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    def _route(self, req: Request) -> tuple[int, dict]:
        if self.token and req.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": "Unauthorized", "message": "Unauthorized", "code": 16}
        if req.method == "GET" and req.path == f"{API}/healthz":
            return 200, {"multi_user": self.multi_user, "commit_sha": "fake", "tag_name": "2.5.0"}
        if req.path == f"{API}/experiments":
            if req.method == "POST":
                exp = {
                    "experiment_id": self._new_id("exp"),
                    "display_name": req.body["display_name"],
                    "namespace": req.body.get("namespace", ""),
                }
                self.experiments[exp["experiment_id"]] = exp
                return 200, exp
            return 200, self._listed("experiments", self.experiments.values(), req)
        created = {
            f"{API}/runs": (self.runs, "run_id", {"state": "PENDING"}),
            f"{API}/recurringruns": (self.recurring, "recurring_run_id", {"status": "ENABLED"}),
        }
        if req.method == "POST" and req.path in created:
            error = self._check_run(req.body)
            if error:
                return 400, {"error": error, "message": error, "code": 3}
            store, key, extra = created[req.path]
            obj = {**req.body, key: self._new_id(key.split("_")[-2]), **extra}
            store[obj[key]] = obj
            return 200, obj
        if req.path == f"{API}/pipelines":
            return 200, self._listed("pipelines", self.pipelines.values(), req)
        if req.method == "POST" and req.path == f"{API}/pipelines/upload":
            name = req.query.get("name")
            if any(p["display_name"] == name for p in self.pipelines.values()):
                return 409, {"error": f"pipeline {name} already exists", "message": "already exists", "code": 6}
            pipeline = {
                "pipeline_id": self._new_id("pipeline"),
                "display_name": name,
                "description": req.query.get("description", ""),
                "spec": list(yaml.safe_load_all(req.files["uploadfile"])),
            }
            self.pipelines[pipeline["pipeline_id"]] = pipeline
            self.versions[pipeline["pipeline_id"]] = [
                {"pipeline_version_id": self._new_id("version"), "display_name": name, "spec": pipeline["spec"]}
            ]
            return 200, {k: v for k, v in pipeline.items() if k != "spec"}
        if req.method == "POST" and req.path == f"{API}/pipelines/upload_version":
            pid, name = req.query.get("pipelineid"), req.query.get("name")
            if pid not in self.pipelines:
                return 404, {"error": f"pipeline {pid} not found", "message": "not found", "code": 5}
            if any(v["display_name"] == name for v in self.versions[pid]):
                return 409, {"error": f"version {name} already exists", "message": "already exists", "code": 6}
            version = {
                "pipeline_version_id": self._new_id("version"),
                "pipeline_id": pid,
                "display_name": name,
                "spec": list(yaml.safe_load_all(req.files["uploadfile"])),
            }
            self.versions[pid].append(version)
            return 200, {k: v for k, v in version.items() if k != "spec"}
        return 404, {"error": f"no route {req.method} {req.path}", "code": 5}

    def _check_run(self, body: dict) -> str | None:
        if body.get("experiment_id") not in self.experiments:
            return f"experiment {body.get('experiment_id')!r} does not exist"
        params = body.get("runtime_config", {}).get("parameters", {})
        if len(json.dumps(params)) > 10_000:
            return "run parameters exceed 10000 bytes"
        if "pipeline_spec" not in body and "pipeline_version_reference" not in body:
            return "a run needs a pipeline spec or a pipeline version"
        return None

    @staticmethod
    def _listed(kind: str, items, req: Request) -> dict:
        items = list(items)
        if "namespace" in req.query:  # a profile namespace lists its own experiments only
            items = [i for i in items if i.get("namespace", "") == req.query["namespace"]]
        if "filter" in req.query:
            for pred in json.loads(req.query["filter"]).get("predicates", []):
                value = pred.get("string_value", pred.get("stringValue"))
                items = [i for i in items if i.get(pred["key"]) == value]
        items = [{k: v for k, v in i.items() if k != "spec"} for i in items]
        return {kind: items, "total_size": len(items)} if items else {"total_size": 0}

    # ------------------------------------------------------------------ HTTP
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _serve(self) -> None:
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                req = Request(self.command, url.path, query, {k.lower(): v for k, v in self.headers.items()})
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("multipart/form-data"):
                    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                        f"Content-Type: {ctype}\r\n\r\n".encode() + raw
                    )
                    req.files = {
                        part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                        for part in msg.iter_parts()
                    }
                elif raw:
                    req.body = json.loads(raw)
                fake.requests.append(req)
                status, payload = fake._route(req)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        return Handler
