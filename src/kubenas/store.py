"""The search store: a small blob interface with an S3 implementation (boto3, any S3-compatible endpoint) and an
in-memory one, and the search's layout on top of it.

Layout under ``s3://BUCKET/PREFIX/<search>/``::

    config.json                          the search config
    state/round-00003.json               strategy state after round 3 and a running summary of the history
    history/round-00003.parquet          one row per candidate evaluated in round 3
    rounds/00004/asked.json              round 4 (not committed yet): its candidates, how many workers train
                                         them, the MLflow parent run and the strategy state right after the ask
    rounds/00004/results/worker-1.json   the rows worker 1 has trained so far, rewritten after each candidate
    rounds/00004/claims/<id>             which worker trains a candidate (a worker that is done with its own
                                         share takes unclaimed candidates of the others, last first)
    weights/<id>.pt                      state_dict of a candidate, where a later step needs it
    weights/<id>.json                    its architecture

A round is committed when its history file exists. It is written last, after the round's state, so a
crash leaves either a whole round or none. Re-running an uncommitted round asks the same candidates (ids
are deterministic) and overwrites the same keys, so no row is ever written twice; a retried worker skips the
candidates its results file already holds. The ``history/`` files read together as one dataset with
``pyarrow.dataset``, pandas or DuckDB.

A step makes a fixed number of requests whatever the length of the search: the running summary in the state
file (evaluations and best value per round) answers the stop rules, so no step re-reads every round's file.

Endpoint and credentials come from the standard AWS chain (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, profiles, instance roles) unless given explicitly.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
from typing import Any, Iterable

from kubenas.data.parquet import endpoint_from_env

_ROUND_FILE = re.compile(r"round-(\d{5})\.parquet$")
_STATE_FORMAT = 2  # state files since the summary: {"format": 2, "strategy": <state>, "summary": {...}}


def history_schema():
    """The history's Parquet schema (pyarrow is imported on first use)."""
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()),
        ("arch_id", pa.string()),
        ("arch", pa.string()),          # JSON
        ("genotype", pa.string()),
        ("parent_id", pa.string()),
        ("round", pa.int32()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("val_acc", pa.float64()),
        ("val_loss", pa.float64()),
        ("params", pa.int64()),
        ("macs", pa.int64()),
        ("train_seconds", pa.float64()),
        ("latency_ms", pa.float64()),
        ("val_acc_curve", pa.list_(pa.float64())),
        ("metrics", pa.string()),       # JSON: every metric, including ones without a column
        ("cost", pa.float64()),
        ("fidelity", pa.string()),      # JSON
        ("epochs", pa.int32()),
    ])


class StoreError(RuntimeError):
    """The S3 store cannot be used; the message says why and what to check."""


def s3_client(endpoint_url: str | None = None, region: str | None = None):
    """A boto3 S3 client with short timeouts and few retries, so a wrong endpoint fails fast."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(  # a fresh session: credentials are read now, not cached
        "s3",
        endpoint_url=endpoint_url or endpoint_from_env(),
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"},
                      s3={"addressing_style": "path"}),
    )


class Blobs:
    """Where a store keeps its objects: get, put, list and delete by key. ``requests`` counts the calls."""

    uri_scheme = "mem"
    requests = 0

    def check(self) -> None:
        """Fail fast, naming the problem, when the blobs cannot be used."""

    def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def put(self, key: str, data: bytes, content_type: str) -> None:
        raise NotImplementedError

    def create(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist yet; False when it did."""
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        raise NotImplementedError


class MemoryBlobs(Blobs):
    """Blobs in a dict: the store for unit tests and in-process runs, no server needed."""

    def __init__(self, bucket: str = "memory"):
        self.bucket, self.objects, self.requests = bucket, {}, 0
        self._lock = threading.Lock()  # workers in threads share one memory store, as pods share S3

    def get(self, key: str) -> bytes | None:
        self.requests += 1
        return self.objects.get(key)

    def put(self, key: str, data: bytes, content_type: str = "") -> None:
        self.requests += 1
        self.objects[key] = bytes(data)

    def create(self, key: str, data: bytes) -> bool:
        with self._lock:
            self.requests += 1
            if key in self.objects:
                return False
            self.objects[key] = bytes(data)
            return True

    def list(self, prefix: str) -> list[str]:
        self.requests += 1
        return sorted(k for k in self.objects if k.startswith(prefix))


class S3Blobs(Blobs):
    """Blobs in an S3 bucket (boto3 is imported on first use)."""

    uri_scheme = "s3"

    def __init__(self, bucket: str, endpoint_url: str | None = None, region: str | None = None, client=None):
        self.bucket, self.endpoint_url, self.region = bucket, endpoint_url or endpoint_from_env(), region
        self._client, self.requests, self.seconds = client, 0, 0.0

    @property
    def client(self):
        if self._client is None:
            self._client = s3_client(self.endpoint_url, self.region)
        return self._client

    def check(self, create_bucket: bool = True) -> None:
        """Fail fast, naming the problem: endpoint unreachable, credentials rejected, or bucket missing."""
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        where = self.endpoint_url or "AWS S3"
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except EndpointConnectionError as exc:
            raise StoreError(f"cannot reach the S3 endpoint {where}: {exc}. Check storage.endpoint_url or "
                             f"AWS_ENDPOINT_URL_S3") from None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchBucket") and create_bucket:
                self._create_bucket()
                return
            if code in ("404", "NoSuchBucket"):
                raise StoreError(f"bucket {self.bucket!r} does not exist at {where}") from None
            if status == 403 or code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
                raise StoreError(f"S3 at {where} rejected the credentials (HTTP {status}{'' if code == str(status) else ' ' + code}) for bucket "
                                 f"{self.bucket!r}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the "
                                 f"Kubernetes Secret") from None
            raise StoreError(f"S3 at {where} answered {status} {code} for bucket {self.bucket!r}") from None
        except BotoCoreError as exc:
            raise StoreError(f"cannot use the S3 endpoint {where}: {exc}") from None

    def _create_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StoreError(f"cannot create bucket {self.bucket!r}: {code}") from None

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        start = time.perf_counter()
        self.requests += 1
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        finally:
            self.seconds += time.perf_counter() - start

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        start = time.perf_counter()
        self.requests += 1
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        self.seconds += time.perf_counter() - start

    def create(self, key: str, data: bytes) -> bool:
        """A conditional PUT (``If-None-Match: *``): S3 refuses it with 412 when the key exists."""
        from botocore.exceptions import ClientError

        start = time.perf_counter()
        self.requests += 1
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
            return True
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
                return False
            raise
        finally:
            self.seconds += time.perf_counter() - start

    def list(self, prefix: str) -> list[str]:
        start, out = time.perf_counter(), []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            self.requests += 1
            out += [obj["Key"] for obj in page.get("Contents", [])]
        self.seconds += time.perf_counter() - start
        return sorted(out)


class SearchStore:
    """Everything one search keeps, on any :class:`Blobs` (S3 by default)."""

    def __init__(self, bucket: str, prefix: str, search: str, endpoint_url: str | None = None,
                 region: str | None = None, client=None, blobs: Blobs | None = None):
        self.bucket, self.search = bucket, search
        self.root = f"{prefix.strip('/')}/{search}".lstrip("/")
        self.blobs = blobs or S3Blobs(bucket, endpoint_url, region, client)
        self.endpoint_url = getattr(self.blobs, "endpoint_url", None)

    @classmethod
    def from_config(cls, config) -> "SearchStore":
        return cls(config.storage.bucket, config.storage.prefix, config.name, config.storage.endpoint_url,
                   config.storage.region)

    @classmethod
    def in_memory(cls, search: str, prefix: str = "searches", blobs: MemoryBlobs | None = None) -> "SearchStore":
        """A store in memory (``blobs`` shares one between stores, as steps in separate processes share S3)."""
        return cls("memory", prefix, search, blobs=blobs or MemoryBlobs())

    @property
    def client(self):
        """The boto3 client of an S3 store."""
        return self.blobs.client

    @property
    def uri(self) -> str:
        return f"{self.blobs.uri_scheme}://{self.bucket}/{self.root}"

    @property
    def requests(self) -> int:
        """Requests made so far (S3 or memory), for benchmarks and for tests that bound them."""
        return self.blobs.requests

    def check(self, create_bucket: bool = True) -> None:
        if isinstance(self.blobs, S3Blobs):
            self.blobs.check(create_bucket)
        else:
            self.blobs.check()

    # ----------------------------------------------------------------- objects
    def key(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def put_bytes(self, rel: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.blobs.put(self.key(rel), data, content_type)

    def get_bytes(self, rel: str) -> bytes | None:
        return self.blobs.get(self.key(rel))

    def put_json(self, rel: str, obj: Any) -> None:
        self.put_bytes(rel, json.dumps(obj, allow_nan=False).encode(), "application/json")

    def get_json(self, rel: str) -> Any | None:
        data = self.get_bytes(rel)
        return None if data is None else json.loads(data)

    def list(self, rel_prefix: str) -> list[str]:
        """Keys below ``rel_prefix``, relative to the search root, sorted."""
        return [k[len(self.root) + 1:] for k in self.blobs.list(self.key(rel_prefix))]

    # ----------------------------------------------------------------- the search
    def read_config(self) -> dict | None:
        return self.get_json("config.json")

    def write_config(self, config: dict) -> None:
        self.put_json("config.json", config)

    def committed_rounds(self) -> list[int]:
        return [int(m.group(1)) for k in self.list("history/") if (m := _ROUND_FILE.search(k))]

    def last_committed_round(self) -> int:
        """The last committed round, or -1 before any."""
        return max(self.committed_rounds(), default=-1)

    def read_state(self, round_index: int) -> dict | None:
        """The strategy state committed with ``round_index``."""
        return self.read_state_and_summary(round_index)[0]

    def read_state_and_summary(self, round_index: int) -> tuple[dict | None, dict | None]:
        """The strategy state and the running summary committed with ``round_index`` (one request). A state file
        written before the summary existed gives None for it."""
        doc = self.get_json(f"state/round-{round_index:05d}.json")
        if isinstance(doc, dict) and doc.get("format") == _STATE_FORMAT:
            return doc["strategy"], doc["summary"]
        return doc, None

    def commit_round(self, round_index: int, rows: Iterable[dict[str, Any]], state: dict,
                     summary: dict | None = None) -> None:
        """Write the round's state (and the running summary), then its history file; the history file makes the
        round committed."""
        import pyarrow.parquet as pq

        table = history_table(rows, round_index)
        self.put_json(f"state/round-{round_index:05d}.json",
                      {"format": _STATE_FORMAT, "strategy": state, "summary": summary or {}})
        buf = io.BytesIO()
        pq.write_table(table, buf)
        self.put_bytes(f"history/round-{round_index:05d}.parquet", buf.getvalue())

    def read_history(self):
        """All committed rows, one pyarrow table (empty with the schema before any round)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [pq.read_table(io.BytesIO(self.get_bytes(f"history/round-{r:05d}.parquet")))
                  for r in self.committed_rounds()]
        return pa.concat_tables(tables) if tables else history_schema().empty_table()

    def round_dir(self, round_index: int) -> str:
        return f"rounds/{round_index:05d}"

    def write_asked(self, round_index: int, asked: dict[str, Any]) -> None:
        self.put_json(f"{self.round_dir(round_index)}/asked.json", asked)

    def read_asked(self, round_index: int) -> dict[str, Any] | None:
        return self.get_json(f"{self.round_dir(round_index)}/asked.json")

    def write_results(self, round_index: int, worker: int, rows: list[dict[str, Any]]) -> None:
        """All the rows one worker has trained in a round so far (a retried worker resumes after them)."""
        self.put_json(f"{self.round_dir(round_index)}/results/worker-{worker}.json", rows)

    def read_results(self, round_index: int, worker: int) -> list[dict[str, Any]]:
        return self.get_json(f"{self.round_dir(round_index)}/results/worker-{worker}.json") or []

    def claim(self, round_index: int, candidate_id: str, worker: int) -> bool:
        """Claim a candidate of the round for ``worker``: True if the claim is this worker's (new, or made by it
        before it was retried). A conditional write decides between workers; reading the claim back also holds
        on S3 servers that ignore the condition (the last writer wins there, and only it reads its own claim)."""
        key = self.key(self.round_dir(round_index), "claims", candidate_id)
        mine = str(worker).encode()
        self.blobs.create(key, mine)
        return self.blobs.get(key) == mine

    # ----------------------------------------------------------------- weights (a WeightStore)
    def save_weights(self, candidate_id: str, state: dict[str, Any], arch: dict[str, Any]) -> None:
        """A candidate's ``state_dict`` (torch's format, tensors only) and its architecture, under ``weights/``."""
        import torch

        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state.items()}, buf)
        self.put_bytes(f"weights/{candidate_id}.pt", buf.getvalue())
        self.put_json(f"weights/{candidate_id}.json", {"arch": arch})

    def load_weights(self, candidate_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """A candidate's ``state_dict`` (loaded with ``weights_only=True``) and architecture, or None."""
        import torch

        meta, data = self.get_json(f"weights/{candidate_id}.json"), self.get_bytes(f"weights/{candidate_id}.pt")
        if meta is None or data is None:
            return None
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu"), meta["arch"]


def history_table(rows: Iterable[dict[str, Any]], round_index: int):
    """Rows as produced by the search loop (``kubenas.search``) turned into the history schema."""
    import pyarrow as pa

    schema = history_schema()
    cols: dict[str, list] = {f.name: [] for f in schema}
    for row in rows:
        m = row.get("metrics") or {}
        fidelity = row.get("fidelity") or {}
        values = {
            "id": row["id"], "arch_id": row["arch_id"], "arch": json.dumps(row["arch"], sort_keys=True),
            "genotype": row["genotype"], "parent_id": row.get("parent_id"), "round": round_index,
            "status": row["status"], "error": row.get("error"),
            "val_acc": m.get("val_acc"), "val_loss": m.get("val_loss"), "params": m.get("params"),
            "macs": m.get("macs"), "train_seconds": m.get("train_seconds"), "latency_ms": m.get("latency_ms"),
            "val_acc_curve": m.get("val_acc_curve"), "metrics": json.dumps(m, sort_keys=True),
            "cost": row.get("cost"), "fidelity": json.dumps(fidelity, sort_keys=True), "epochs": fidelity.get("epochs"),
        }
        for name in cols:
            cols[name].append(values[name])
    return pa.table(cols, schema=schema)
