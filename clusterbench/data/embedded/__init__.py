"""Datasets shipped inside the package (see README.md in this folder for provenance).

``handwritten.npz``: the UCI "Multiple Features" handwritten digits (Robert P.W. Duin),
2000 samples, 6 views (fou 76, fac 216, kar 64, pix 240, zer 47, mor 6), 10 classes of 200,
licence CC BY 4.0. Built by ``scripts/build_embedded_handwritten.py``.
"""

from __future__ import annotations

from importlib import resources
from typing import Sequence

from clusterbench.data.multiview import MultiViewData, load_multiview

__all__ = ["load_handwritten", "HANDWRITTEN_SHA256", "HANDWRITTEN_FILE"]

HANDWRITTEN_FILE = "handwritten.npz"
#: sha256 of handwritten.npz; equals ``load_handwritten().checksum``.
HANDWRITTEN_SHA256 = "135dc5872f445e0c46181c999d4a279cc78624a5f3da5c8d6a475f4ffcd1bf35"
HANDWRITTEN_SOURCE = (
    "embedded in clusterbench (clusterbench/data/embedded/handwritten.npz; UCI Multiple "
    "Features, https://archive.ics.uci.edu/dataset/72/multiple+features)"
)


def load_handwritten(
    name: str = "handwritten",
    preprocess: str | Sequence[str] = "none",
    n_clusters: int | None = None,
    views: Sequence[int] | None = None,
) -> MultiViewData:
    """Load the embedded UCI handwritten digits through :func:`load_multiview`.

    ``views`` keeps the views at these 0-based indices (``+dataset.views=[1,4]``); the six views
    are fou (76), fac (216), kar (64), pix (240), zer (47), mor (6), in the file's order.

    Works from a source checkout and from an installed wheel (read via importlib.resources);
    ``checksum`` of the result is the sha256 of the npz (``HANDWRITTEN_SHA256``).
    """
    resource = resources.files(__name__).joinpath(HANDWRITTEN_FILE)
    with resources.as_file(resource) as path:
        data = load_multiview(
            name=name,
            path=path,
            preprocess=preprocess,
            n_clusters=n_clusters,
            source=HANDWRITTEN_SOURCE,
            views=views,
        )
    # From a zipped install as_file() hands out a temporary copy; record the resource instead.
    data.source = str(resource)
    return data
