#!/usr/bin/env bash
# Make a local Python base image from Debian packages, for machines that reach a Debian mirror but no container
# registry (air-gapped sites, CI sandboxes). The result replaces `python:3.11-slim-bookworm` as the build's base:
#
#   images/base.sh [--tag localhost/kubenas-base:bookworm] [--engine podman|docker]
#   images/build.sh localhost/kubenas --base localhost/kubenas-base:bookworm ...
#
# It runs mmdebstrap (minbase: Python 3.11 with venv, `python` on PATH, CA certificates) and imports the root
# filesystem. An existing image with that tag is kept (pass --rebuild to make it again): the base is what a build
# machine caches between builds.
set -euo pipefail
tag=localhost/kubenas-base:bookworm engine=${CONTAINER_ENGINE:-} rebuild=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=${2:?}; shift 2 ;;
    --engine) engine=${2:?}; shift 2 ;;
    --rebuild) rebuild=1; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    *) echo "base.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$engine" ] || engine=$(command -v podman >/dev/null && echo podman || echo docker)
command -v mmdebstrap >/dev/null || { echo "base.sh: needs mmdebstrap (apt-get install -y mmdebstrap)" >&2; exit 1; }
if [ "$rebuild" -eq 0 ] && "$engine" image exists "$tag" 2>/dev/null; then
  echo "base.sh: $tag exists (--rebuild makes it again)"; exit 0
fi
tar=$(mktemp --suffix=.tar)
trap 'rm -f "$tar"' EXIT
start=$(date +%s)
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
  bookworm "$tar"
"$engine" import --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' "$tar" "$tag" >/dev/null
echo "base.sh: made $tag in $(( $(date +%s) - start )) s ($("$engine" image inspect --format '{{.Size}}' "$tag" | numfmt --to=iec))"
