"""Where datasets lie: a local path or an ``s3://BUCKET/KEY`` on any S3-compatible endpoint, read through pyarrow's
S3 filesystem with the standard AWS credentials."""

from __future__ import annotations

import os
import re
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


def filesystem(path: str):
    """The pyarrow filesystem that reads ``path`` (S3 for ``s3://``, else this machine) and the path within it."""
    from pyarrow import fs

    if in_s3(path):
        return s3_filesystem(), path[len("s3://") :].rstrip("/")
    return fs.LocalFileSystem(), os.path.abspath(path)


def list_tree(path: str, name: str):
    """Every file and directory under ``path`` (recursive), as pyarrow ``FileInfo``; raises ValueError naming the
    path when it does not exist or is not a directory."""
    from pyarrow import fs

    filesys, root = filesystem(path)
    try:
        info = filesys.get_file_info(root)
        if info.type != fs.FileType.Directory:
            what = "does not exist" if info.type == fs.FileType.NotFound else "is not a directory"
            raise ValueError(f"dataset {name!r}: {path!r} {what}")
        return filesys, root, filesys.get_file_info(fs.FileSelector(root, recursive=True))
    except OSError as exc:
        raise ValueError(f"dataset {name!r}: cannot list {path!r}: {exc}") from None


def stamp(info) -> str:
    """What tells one version of a file from another: its size and modification time."""
    mtime = info.mtime_ns if info.mtime_ns is not None else ""
    return f"{info.size}:{mtime}"


def check_path(path: object, name: str) -> None:
    if not isinstance(path, str) or not path:
        raise ValueError(f"dataset {name!r}: a path must be a non-empty string, got {path!r}")
    if path.startswith("s3://"):
        bucket, _, key = path[len("s3://") :].partition("/")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket) or not key.strip("/"):
            raise ValueError(
                f"dataset {name!r}: path {path!r} must be s3://BUCKET/KEY with a valid bucket name "
                "(3-63 lowercase letters, digits, '.', '-') and a key"
            )
    elif "://" in path:
        raise ValueError(f"dataset {name!r}: path {path!r} must be a local path or s3://BUCKET/KEY")
