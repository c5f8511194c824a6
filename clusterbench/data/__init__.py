"""Datasets: multi-view feature files (.npz / .mat) and the embedded handwritten-digits set."""

from clusterbench.data.multiview import (
    MultiViewData,
    file_sha256,
    load_multiview,
    preprocess_view,
)

__all__ = ["MultiViewData", "load_multiview", "preprocess_view", "file_sha256", "load_handwritten"]


def load_handwritten(*args, **kwargs):
    """Load the embedded UCI handwritten digits (see :mod:`clusterbench.data.embedded`)."""
    from clusterbench.data.embedded import load_handwritten as _load

    return _load(*args, **kwargs)
