"""The search store: a small blob interface with an S3 implementation (boto3, any S3-compatible endpoint) and an
in-memory one, and the search's layout on top of it.

Layout under ``s3://BUCKET/PREFIX/<search>/``::

    config.json                          the search config
    history/rounds-00000-00003.parquet   every committed row, one per candidate evaluated in rounds 0 to 3, and
                                         (in the file's metadata) the strategy state committed with round 3
    rounds/00004/asked.json              round 4 (not committed yet): its candidates, how many workers train
                                         them, the MLflow parent run and the strategy state right after the ask
    rounds/00004/claims/<attempt>/<id>   which worker trains a candidate (workers take the round's candidates
                                         from one queue, the costliest first)
    rounds/00004/results/worker-1.json   the rows worker 1 has trained so far, rewritten after each candidate
    weights/<id>.pt                      state_dict of a candidate, where a later step needs it
    weights/<id>.json                    its architecture
    lease.json                           which run writes the search now (:mod:`kubenas.lease`)

The history lives in the Parquet file only: a strategy's state holds what its algorithm carries (RNG, population,
policy), and its told results are read back from the history. A round is committed by one write, the new history
file; the file it replaces is deleted after it. So a crash leaves a whole round or none, and each step reads the
history in two requests (a listing and the newest file) however long the search. Re-running an uncommitted round
asks the same candidates (ids are deterministic) and overwrites the same keys, so no row is ever written twice; a
retried worker skips the candidates its results file already holds. Read the history with ``pyarrow.dataset``,
pandas or DuckDB (:mod:`kubenas.history` owns its schema). The lease that lets one run write a search at a time is
:mod:`kubenas.lease`.

Endpoint and credentials come from the standard AWS chain (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, profiles, instance roles) unless given explicitly.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from kubenas import history
from kubenas.core import UserError
from kubenas.data.s3 import endpoint_from_env
from kubenas.failpoints import failpoint

_HISTORY_FILE = re.compile(r"history/rounds-(\d{5})-(\d{5})\.parquet$")  # every committed row, rounds A..B
STATE_KEY = b"kubenas.state"  # the Parquet metadata key of the strategy state committed with the history


@dataclass
class Committed:
    """What a search has committed: its last round (-1 before any), every row as a history table, the strategy
    state committed with them, and the history files they were read from (newest first)."""

    last: int
    table: Any
    state: dict | None
    files: list[tuple[int, str]]

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        """The table as history rows (:func:`kubenas.history.rows`), converted once."""
        return history.rows(self.table)


class StoreError(UserError, RuntimeError):
    """The S3 store cannot be used; the message says why and what to check."""


def s3_client(endpoint_url: str | None = None, region: str | None = None):
    """A boto3 S3 client with short timeouts and few retries, so a wrong endpoint fails fast."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(  # a fresh session: credentials are read now, not cached
        "s3",
        endpoint_url=endpoint_url or endpoint_from_env(),
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )


class Blobs:
    """Where a store keeps its objects: get, put, list and delete by key. ``requests`` counts the calls."""

    uri_scheme = "mem"
    requests = 0

    def check(self, create_bucket: bool = True) -> None:
        """Fail fast, naming the problem, when the blobs cannot be used."""

    def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def put(self, key: str, data: bytes, content_type: str) -> None:
        raise NotImplementedError

    def create(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist yet; False when it did."""
        raise NotImplementedError

    def delete(self, keys: list[str]) -> None:
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

    def delete(self, keys: list[str]) -> None:
        self.requests += 1
        for key in keys:
            self.objects.pop(key, None)

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
            raise StoreError(
                f"cannot reach the S3 endpoint {where}: {exc}. Check storage.endpoint_url or AWS_ENDPOINT_URL_S3"
            ) from None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchBucket") and create_bucket:
                self._create_bucket()
                return
            if code in ("404", "NoSuchBucket"):
                raise StoreError(f"bucket {self.bucket!r} does not exist at {where}") from None
            if status == 403 or code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
                raise StoreError(
                    f"S3 at {where} rejected the credentials "
                    f"(HTTP {status}{'' if code == str(status) else ' ' + code}) for bucket "
                    f"{self.bucket!r}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the "
                    f"Kubernetes Secret"
                ) from None
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

    @contextlib.contextmanager
    def _request(self, what: str, count: int = 1):
        """Count ``count`` requests and time them (for benchmarks and the request bounds tests check). S3 out of
        reach, after the client's bounded retries (3 attempts, 5 s to connect), is a :class:`StoreError` that says
        what failed."""
        from botocore.exceptions import (
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        start = time.perf_counter()
        self.requests += count
        try:
            yield
        except (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError) as exc:
            raise StoreError(
                f"S3 at {self.endpoint_url or 'AWS'} did not answer ({what}, after 3 attempts): {exc}. "
                "The committed rounds are intact; run the search again to resume"
            ) from None
        finally:
            self.seconds += time.perf_counter() - start

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        with self._request(f"reading {key}"):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        with self._request(f"writing {key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def create(self, key: str, data: bytes) -> bool:
        """A conditional PUT (``If-None-Match: *``): S3 refuses it with 412 when the key exists."""
        from botocore.exceptions import ClientError

        with self._request(f"creating {key}"):
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
                return True
            except ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
                    return False
                raise

    def delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            with self._request(f"deleting {len(keys)} object(s)"):
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True}
                )

    def list(self, prefix: str) -> list[str]:
        out = []
        with self._request(f"listing {prefix}", count=0):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                self.requests += 1  # one per page
                out += [obj["Key"] for obj in page.get("Contents", [])]
        return sorted(out)


class SearchStore:
    """Everything one search keeps, on any :class:`Blobs` (S3 by default)."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        search: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        client=None,
        blobs: Blobs | None = None,
    ):
        self.bucket, self.search = bucket, search
        self.root = f"{prefix.strip('/')}/{search}".lstrip("/")
        self.blobs = blobs or S3Blobs(bucket, endpoint_url, region, client)
        self.endpoint_url = getattr(self.blobs, "endpoint_url", None)

    @classmethod
    def from_config(cls, config) -> SearchStore:
        return cls(
            config.storage.bucket,
            config.storage.prefix,
            config.name,
            config.storage.endpoint_url,
            config.storage.region,
        )

    @classmethod
    def in_memory(cls, search: str, prefix: str = "searches", blobs: MemoryBlobs | None = None) -> SearchStore:
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
        self.blobs.check(create_bucket)

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
        return [k[len(self.root) + 1 :] for k in self.blobs.list(self.key(rel_prefix))]

    # ----------------------------------------------------------------- the search
    def read_config(self) -> dict | None:
        return self.get_json("config.json")

    def write_config(self, config: dict) -> None:
        self.put_json("config.json", config)

    def _history_files(self) -> list[tuple[int, str]]:
        """The history's files, ``(last round, key)``, the newest first (older ones are left by a crash between a
        commit's two writes); one request."""
        keys = self.list("history/")
        return sorted(((int(m.group(2)), k) for k in keys if (m := _HISTORY_FILE.search(k))), reverse=True)

    def committed_rounds(self) -> list[int]:
        files = self._history_files()
        return list(range(files[0][0] + 1)) if files else []

    def last_committed_round(self) -> int:
        """The last committed round, or -1 before any."""
        files = self._history_files()
        return files[0][0] if files else -1

    def read_committed(self, columns: list[str] | None = None) -> Committed:
        """The last committed round, every committed row and the strategy state committed with them, in two
        requests whatever the number of rounds: the history is one file, rewritten at each commit, with the state
        in its metadata. ``columns`` reads only those columns of the table."""
        import pyarrow.parquet as pq

        files = self._history_files()
        if not files:
            table = history.schema().empty_table()
            return Committed(-1, table.select(columns) if columns else table, None, files)
        last, key = files[0]
        table = pq.read_table(io.BytesIO(self.get_bytes(key)), columns=columns)
        raw = (table.schema.metadata or {}).get(STATE_KEY)
        return Committed(last, table.replace_schema_metadata(None), json.loads(raw) if raw else None, files)

    def read_history(self, columns: list[str] | None = None):
        """All committed rows as a history table (empty, with the schema, before any round)."""
        return self.read_committed(columns).table

    def commit_round(
        self, round_index: int, rows: Iterable[dict[str, Any]], state: dict, committed: Committed | None = None
    ) -> None:
        """Commit a round: one new file holds every committed row (``committed``, what :meth:`read_committed`
        returned, or read now) and this round's, with the strategy state in its metadata. That single write is the
        commit; the files it replaces are deleted after it (a crash in between leaves an older file, which readers
        here skip, and the next commit deletes)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        committed = committed if committed is not None else self.read_committed()
        previous = committed.table
        previous = previous.filter(pc.less(previous.column("round"), round_index))  # a re-run replaces its rows
        table = pa.concat_tables([previous.cast(history.schema()), history.to_table(rows, round_index)])
        table = table.replace_schema_metadata({STATE_KEY: json.dumps(state, allow_nan=False).encode()})
        first = min(table.column("round").to_pylist(), default=round_index)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        key = f"history/rounds-{first:05d}-{round_index:05d}.parquet"
        self.put_bytes(key, buf.getvalue())
        failpoint("commit")  # between the writes that commit a round: the new file is there, the old one too
        stale = [k for _, k in committed.files if k != key]
        if stale:
            self.blobs.delete([self.key(k) for k in stale])

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

    def read_all_results(self, round_index: int) -> list[dict[str, Any]]:
        """Every row any worker of any attempt at the round has written, the first for each candidate id."""
        rows: dict[str, dict[str, Any]] = {}
        for key in self.list(f"{self.round_dir(round_index)}/results/"):
            for row in self.get_json(key) or []:
                rows.setdefault(row["id"], row)
        return list(rows.values())

    def claim(self, round_index: int, attempt: str, candidate_id: str, worker: int) -> bool:
        """Claim a candidate of an attempt at the round for ``worker``: True if the claim is this worker's (new, or
        made by it before it was retried). A conditional write decides between workers; reading the claim back also
        holds on S3 servers that ignore the condition (the last writer wins there, and only it reads its own claim).
        A new attempt (the round sampled again, maybe with another number of workers) claims afresh."""
        key = self.key(self.round_dir(round_index), "claims", attempt, candidate_id)
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
