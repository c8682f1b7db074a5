"""The search store on S3 (any S3-compatible endpoint), built on boto3 and pyarrow.

Layout under ``s3://BUCKET/PREFIX/<search>/``::

    config.json                          the search config
    state/round-00003.json               strategy state after round 3 (committed rounds only)
    history/round-00003.parquet          one row per candidate evaluated in round 3
    rounds/00004/candidates.json         candidates asked for round 4 (not committed yet)
    rounds/00004/asked_state.json        strategy state right after the ask
    rounds/00004/results/<id>.json       one result per trained candidate
    weights/<id>.pt                      state_dict of a candidate, where a later step needs it
    weights/<id>.json                    its architecture

A round is committed when its history file exists. It is written last, after the round's state, so a
crash leaves either a whole round or none. Re-running an uncommitted round asks the same candidates (ids
are deterministic) and overwrites the same keys, so no row is ever written twice. The ``history/`` files
read together as one dataset with ``pyarrow.dataset``, pandas or DuckDB.

Endpoint and credentials come from the standard AWS chain (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, profiles, instance roles) unless given explicitly.
"""

from __future__ import annotations

import io
import json
import os
import re
from typing import Any, Iterable

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from kubenas.data.parquet import endpoint_from_env

HISTORY_SCHEMA = pa.schema([
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
_ROUND_FILE = re.compile(r"round-(\d{5})\.parquet$")


class StoreError(RuntimeError):
    """The S3 store cannot be used; the message says why and what to check."""


def s3_client(endpoint_url: str | None = None, region: str | None = None):
    """A boto3 S3 client with short timeouts and few retries, so a wrong endpoint fails fast."""
    return boto3.session.Session().client(  # a fresh session: credentials are read now, not cached
        "s3",
        endpoint_url=endpoint_url or endpoint_from_env(),
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"},
                      s3={"addressing_style": "path"}),
    )


class SearchStore:
    """Everything one search keeps in S3."""

    def __init__(self, bucket: str, prefix: str, search: str, endpoint_url: str | None = None,
                 region: str | None = None, client=None):
        self.bucket, self.search = bucket, search
        self.root = f"{prefix.strip('/')}/{search}".lstrip("/")
        self.endpoint_url = endpoint_url or endpoint_from_env()
        self.client = client or s3_client(self.endpoint_url, region)

    @classmethod
    def from_config(cls, config) -> "SearchStore":
        return cls(config.storage.bucket, config.storage.prefix, config.name, config.storage.endpoint_url,
                   config.storage.region)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.root}"

    # ----------------------------------------------------------------- connectivity
    def check(self, create_bucket: bool = True) -> None:
        """Fail fast, naming the problem: endpoint unreachable, credentials rejected, or bucket missing."""
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
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StoreError(f"cannot create bucket {self.bucket!r}: {code}") from None

    # ----------------------------------------------------------------- objects
    def key(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def put_bytes(self, rel: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(rel), Body=data, ContentType=content_type)

    def get_bytes(self, rel: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(rel))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def put_json(self, rel: str, obj: Any) -> None:
        self.put_bytes(rel, json.dumps(obj, allow_nan=False).encode(), "application/json")

    def get_json(self, rel: str) -> Any | None:
        data = self.get_bytes(rel)
        return None if data is None else json.loads(data)

    def list(self, rel_prefix: str) -> list[str]:
        """Keys below ``rel_prefix``, relative to the search root, sorted."""
        prefix = self.key(rel_prefix)
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out += [obj["Key"][len(self.root) + 1:] for obj in page.get("Contents", [])]
        return sorted(out)

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
        return self.get_json(f"state/round-{round_index:05d}.json")

    def commit_round(self, round_index: int, rows: Iterable[dict[str, Any]], state: dict) -> None:
        """Write the round's state, then its history file; the history file makes the round committed."""
        table = history_table(rows, round_index)
        self.put_json(f"state/round-{round_index:05d}.json", state)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        self.put_bytes(f"history/round-{round_index:05d}.parquet", buf.getvalue())

    def read_history(self) -> pa.Table:
        """All committed rows, one table (empty with the schema before any round)."""
        tables = [pq.read_table(io.BytesIO(self.get_bytes(f"history/round-{r:05d}.parquet")))
                  for r in self.committed_rounds()]
        return pa.concat_tables(tables) if tables else HISTORY_SCHEMA.empty_table()

    def round_dir(self, round_index: int) -> str:
        return f"rounds/{round_index:05d}"

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


def history_table(rows: Iterable[dict[str, Any]], round_index: int) -> pa.Table:
    """Rows as produced by the search loop (``kubenas.search``) turned into the history schema."""
    cols: dict[str, list] = {f.name: [] for f in HISTORY_SCHEMA}
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
    return pa.table(cols, schema=HISTORY_SCHEMA)
