#!/usr/bin/env bash
# Build the CUDA variant's Dockerfile as far as a machine without a registry or a GPU allows: on a stand-in for
# pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime that holds the CPU build of torch 2.13.0 in the base's own
# environment (as the PyTorch image holds its CUDA build in /opt/conda). What it checks: the venv with
# --system-site-packages, pip resolving the constraints around a torch it must not touch, pip check, the pin
# check with base-image packages, the imports, and the non-root final stage. What it cannot: the CUDA torch, the
# real base image, and a GPU.
#
#   images/cuda_standin.sh [build.sh options: --wheels DIR --ca-bundle FILE --index-url URL ...]
#
# It makes localhost/kubenas-cuda-standin:2.13.0 (from localhost/kubenas-base:bookworm, images/base.sh) and
# localhost/kubenas-standin:<version>-cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${CONTAINER_ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
standin=localhost/kubenas-cuda-standin:2.13.0
wheels="" cert="" args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) wheels=$(cd "${2:?}" && pwd); shift 2 ;;
    --ca-bundle) cert=${2:?}; shift 2 ;;
    *) shift ;;
  esac
done
mounts=() env=()
[ -z "$wheels" ] || { mounts+=(--volume "$wheels:/wheels:ro"); env+=(--env PIP_FIND_LINKS=/wheels); }
[ -z "$cert" ] || { mounts+=(--volume "$cert:/etc/kubenas-build-ca.crt:ro"); env+=(--env PIP_CERT=/etc/kubenas-build-ca.crt); }
if ! "$engine" image exists "$standin" 2>/dev/null; then
  # the PyTorch image's layout: torch and its dependencies in the base interpreter's own site-packages (there,
  # /opt/conda's), which a venv made with --system-site-packages sees
  cid=$("$engine" run -d ${mounts[@]+"${mounts[@]}"} ${env[@]+"${env[@]}"} localhost/kubenas-base:bookworm sh -c \
        'python -m venv /tmp/pip && /tmp/pip/bin/pip install -q --target "$(python -c "import site; print(site.getsitepackages()[0])")" "torch==2.13.0"')
  status=$("$engine" wait "$cid")
  [ "$status" = 0 ] || { "$engine" logs "$cid" >&2; "$engine" rm "$cid" >/dev/null; exit 1; }
  "$engine" commit "$cid" "$standin" >/dev/null
  "$engine" rm "$cid" >/dev/null
fi
images/build.sh localhost/kubenas-standin --variant cuda --cuda-base "$standin" ${args[@]+"${args[@]}"}
