#!/usr/bin/env bash
# Build the kubenas component image (CPU and CUDA variants) and push it to a registry of yours.
#
#   images/build.sh REGISTRY [--variant cpu|cuda|all] [--push] [--dry-run]
#                   [--base IMAGE] [--cuda-base IMAGE] [--index-url URL] [--torch-index URL] [--wheels DIR]
#                   [--ca-bundle FILE] [--no-layer-cache]
#   images/build.sh --lock        # regenerate images/constraints.txt from pyproject.toml
#
# REGISTRY is the image repository without a tag, e.g. registry.example.com/ml/kubenas. The tags are the
# package version (CPU) and <version>-cuda (CUDA); compile or submit pipelines with the same repository:
#   KUBENAS_IMAGE_REPO=REGISTRY kubenas upload CONFIG --host ...
# The engine is podman, else docker (CONTAINER_ENGINE names another with the same CLI). For a site without
# Docker Hub, PyPI or PyTorch's index: --base (images/base.sh makes one from Debian packages; --cuda-base for the
# CUDA variant, a PyTorch CUDA runtime image or your mirror of it), --index-url (a
# mirror), --torch-index or --wheels (a directory holding the torch==2.13.0+cpu wheel; podman mounts it),
# --ca-bundle (a TLS-intercepting proxy's CA, mounted for pip; podman). --no-layer-cache builds every layer anew
# and keeps no intermediate images (CI machines: the disk stays bounded).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -nE 's/^__version__ = "([^"]+)"$/\1/p' src/kubenas/__init__.py)
[ -n "$version" ] || { echo "build.sh: cannot read __version__ from src/kubenas/__init__.py" >&2; exit 1; }

if [ "${1:-}" = "--lock" ]; then
  report=$(mktemp)
  python -m pip install --quiet --dry-run --ignore-installed --report "$report" "torch==2.13.0" ".[digits,onnx,server]"
  python - "$report" images/constraints.txt <<'PY'
import json, sys
report, out = sys.argv[1:]
pins = sorted((p["metadata"]["name"].lower(), p["metadata"]["version"]) for p in json.load(open(report))["install"])
lines = ["# Exact versions of every dependency in the kubenas image (torch excepted: the CPU image pins it on its",
         "# own line and the CUDA image keeps its base image's build). Regenerate with `images/build.sh --lock`."]
lines += [f"{name}=={version}" for name, version in pins if name not in ("kubenas", "torch")]
open(out, "w").write("\n".join(lines) + "\n")
print(f"wrote {out}: {len(lines) - 2} pinned packages")
PY
  rm -f "$report"
  exit 0
fi

usage() { sed -n '2,/^set /{/^set /!p}' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
registry="" variant=all push=0 dry=0 fresh=0 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --variant) variant=${2:-}; shift 2 ;;
    --base) extra+=(--build-arg "PYTHON_IMAGE=${2:?}"); shift 2 ;;
    --cuda-base) extra+=(--build-arg "CUDA_IMAGE=${2:?}"); shift 2 ;;
    --index-url) extra+=(--build-arg "PIP_INDEX_URL=${2:?}"); shift 2 ;;
    --torch-index) extra+=(--build-arg "TORCH_INDEX_URL=${2:?}"); shift 2 ;;
    --wheels) [ -d "${2:?}" ] || { echo "build.sh: --wheels $2 is not a directory" >&2; exit 2; }
              extra+=(--volume "$(cd "$2" && pwd):/wheels:ro" --build-arg TORCH_FIND_LINKS=/wheels
                      --build-arg TORCH_INDEX_URL=); shift 2 ;;
    --ca-bundle) [ -f "${2:?}" ] || { echo "build.sh: --ca-bundle $2 is not a file" >&2; exit 2; }
                 extra+=(--volume "$(cd "$(dirname "$2")" && pwd)/$(basename "$2"):/etc/kubenas-build-ca.crt:ro"
                         --build-arg PIP_CERT=/etc/kubenas-build-ca.crt); shift 2 ;;
    --no-layer-cache) fresh=1; shift ;;
    --push) push=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) usage ;;
    -*) echo "build.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$registry" ] || usage; registry=$1; shift ;;
  esac
done
[ -n "$registry" ] || { echo "build.sh: give the image repository, e.g. registry.example.com/ml/kubenas" >&2; usage; }
case "$registry" in *:*/*|*@*) ;; *:*) echo "build.sh: give REGISTRY without a tag; the tag is the version ($version)" >&2; exit 2 ;; esac
case "$variant" in cpu|cuda|all) ;; *) echo "build.sh: --variant must be cpu, cuda or all, not '$variant'" >&2; exit 2 ;; esac

engine=${CONTAINER_ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
if [ "$fresh" -eq 1 ]; then  # every layer built anew, and (podman) no intermediate image kept: bounded disk, for CI
  extra+=(--no-cache); [ "$(basename "$engine")" != podman ] || extra+=(--layers=false)
fi
run() { echo "+ $*"; [ "$dry" -eq 1 ] || "$@"; }
build() {  # build VARIANT DOCKERFILE TAG
  local old
  old=$("$engine" image inspect --format '{{.Id}}' "$registry:$3" 2>/dev/null || true)
  run "$engine" build --file "$2" --tag "$registry:$3" ${extra[@]+"${extra[@]}"} \
      --label "org.opencontainers.image.version=$version" --label "org.opencontainers.image.title=kubenas-$1" .
  # the image this tag named before, now untagged: removed, or every rebuild would leave one behind (2 GB)
  if [ "$dry" -eq 0 ] && [ -n "$old" ] && [ "$("$engine" image inspect --format '{{len .RepoTags}}' "$old" \
       2>/dev/null || echo 1)" = 0 ]; then
    "$engine" rmi "$old" >/dev/null 2>&1 || true
  fi
  [ "$push" -eq 0 ] || run "$engine" push "$registry:$3"
}
[ "$variant" = cuda ] || build cpu images/Dockerfile "$version"
[ "$variant" = cpu ] || build cuda images/Dockerfile.cuda "$version-cuda"
