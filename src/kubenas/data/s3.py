"""Where datasets lie: a local path or an ``s3://BUCKET/KEY`` on any S3-compatible endpoint, read through pyarrow's
S3 filesystem with the standard AWS credentials."""

from __future__ import annotations

import os
from collections.abc import Iterable


def endpoint_from_env() -> str | None:
    """The S3 endpoint override of the standard AWS variables (SeaweedFS, MinIO); None means AWS."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def s3_filesystem(endpoint_url: str | None = None):
    """A pyarrow S3 filesystem: credentials from the standard AWS chain, endpoint from ``endpoint_url`` or
    ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (SeaweedFS, MinIO), else AWS."""
    from pyarrow import fs

    endpoint = endpoint_url or endpoint_from_env()
    kwargs: dict = {"region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    if endpoint:
        scheme, _, host = endpoint.rpartition("://")
        kwargs.update(endpoint_override=host, scheme=scheme or "https")
    return fs.S3FileSystem(**kwargs)


def in_s3(source: str) -> bool:
    return source.startswith("s3://")


def check_sources(sources: Iterable[str], name: str) -> None:
    """Raise ValueError naming the source when one does not exist where the data will be read: on this machine, or
    in S3 (no such bucket or key). A run's pre-flight calls it; the config check cannot, as a config submitted to a
    cluster names paths of the cluster's pods."""
    from pyarrow import fs

    for p in sources:
        if not in_s3(p):
            if not os.path.exists(p):
                raise ValueError(
                    f"dataset {name!r}: path {p!r} does not exist (relative paths are read from {os.getcwd()})"
                )
            continue
        try:
            info = s3_filesystem().get_file_info(p[len("s3://") :])
        except OSError as exc:
            raise ValueError(f"dataset {name!r}: cannot read {p!r}: {exc}") from None
        if info.type == fs.FileType.NotFound:
            raise ValueError(f"dataset {name!r}: {p!r} does not exist (no such bucket or key)")
