"""The one component image every kubenas component runs in, tagged with the package version.

Override the repository (not the tag) with ``KUBENAS_IMAGE_REPO`` at compile time, e.g. for a private
registry that ``images/build.sh`` pushed to.
"""

import os

from kubenas import __version__

IMAGE_REPO = os.environ.get("KUBENAS_IMAGE_REPO", "ghcr.io/kubenas/kubenas")
IMAGE = f"{IMAGE_REPO}:{__version__}"
