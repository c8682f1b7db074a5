"""The one component image every kubenas component runs in, tagged with the package version.

The CPU variant is ``REPO:<version>``; training and export tasks that request GPUs run the CUDA variant
``REPO:<version>-cuda``. Both are built by ``images/build.sh`` from ``images/Dockerfile(.cuda)``. Override the
repository (not the tag) with ``KUBENAS_IMAGE_REPO`` at compile time, e.g. for a private registry, or a whole
image per search with ``resources.image`` in the config.
"""

import os

from kubenas import __version__

IMAGE_REPO = os.environ.get("KUBENAS_IMAGE_REPO", "ghcr.io/kubenas/kubenas")
IMAGE = f"{IMAGE_REPO}:{__version__}"
CUDA_IMAGE = f"{IMAGE}-cuda"


def image_for(gpus: int, override: str | None = None) -> str:
    """The image a task runs in: ``override`` if given, else the CUDA variant for GPU tasks, else the CPU one."""
    return override or (CUDA_IMAGE if gpus else IMAGE)
