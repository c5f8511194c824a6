"""Multi-view feature datasets from ``.npz`` and MATLAB ``.mat`` (v5 and v7.3) files.

Supported layouts (chosen per dataset in its config, see ``configs/dataset/``):

* ``.npz`` with keys ``n_views``, ``labels``, ``view_0``, ``view_1``, ... (the format the
  SDCIB and CoMVC authors distribute). Arrays are samples-first (numpy order); views with more
  than two axes (e.g. images ``(n, c, h, w)``) are flattened to ``(n, c*h*w)``. ``cell_key`` is
  ignored; ``view_keys`` selects other arrays if given.
* ``.mat`` v5 (read with :func:`scipy.io.loadmat`) and v7.3 (HDF5, read with :mod:`h5py`), the
  views either in one cell array (``cell_key``; 1xV or Vx1) or in named arrays (``view_keys``).
  Cell elements may be dense or sparse (sparse becomes dense float32).

Orientation
-----------
``orientation`` always describes the arrays *as MATLAB shows them* (``size(X{1})`` in MATLAB,
which is also the shape :func:`scipy.io.loadmat` returns): ``samples_first`` means ``(n, d)``,
``features_first`` means ``(d, n)`` (transposed on load), ``auto`` picks the axis whose length
equals the number of labels and refuses square views. MATLAB writes v7.3 files column-major, so
h5py sees every MATLAB array transposed (a MATLAB ``544 x 3183`` matrix is an h5py dataset of
shape ``(3183, 544)``). The loader transposes h5py arrays back to MATLAB's shape before applying
``orientation``, so the same config value means the same thing for v5 and v7.3 files.

Labels are flattened from ``(n, 1)`` / ``(1, n)`` and remapped to ``0..C-1`` in sorted order of
the original values (so labels stored from 0 or from 1 give the same result).

Every problem with the data is raised as a one-line :class:`~clusterbench.errors.DataError`
that names the dataset, the file and the key or value at fault.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from clusterbench.errors import ConfigError, DataError

__all__ = [
    "MultiViewData",
    "load_multiview",
    "preprocess_view",
    "PREPROCESS_OPTIONS",
    "ORIENTATIONS",
    "file_sha256",
]

PREPROCESS_OPTIONS = ("none", "minmax", "standard", "l2")
ORIENTATIONS = ("auto", "samples_first", "features_first")

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------
class MultiViewData(Dataset):
    """A multi-view dataset held in memory.

    Attributes:
        name: dataset name (from the config).
        views: one float32 tensor ``(N, d_v)`` per view.
        labels: int64 tensor ``(N,)`` with values ``0..C-1``, or ``None`` for unlabelled data
            (then ``n_clusters`` is required and runs report label-free scores).
        n_clusters: number of clusters to look for (defaults to the number of classes).
        checksum: sha256 hex digest of the source file's bytes.
        source: path of the file the data was read from.
        view_names: a name per view (the key or cell element it came from).
        class_names: a name per class in label order (the stored label values), if known.

    ``ds[i]`` returns ``(views_i, label_i, i)`` where ``views_i`` is a list holding the
    ``i``-th row of every view, so a default ``DataLoader`` yields
    ``(list of (B, d_v) tensors, (B,) labels, (B,) indices)`` (label -1 when unlabelled).
    """

    def __init__(
        self,
        name: str,
        views: Sequence[torch.Tensor | np.ndarray],
        labels: torch.Tensor | np.ndarray | None,
        n_clusters: int | None = None,
        checksum: str = "",
        source: str = "",
        view_names: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.name = str(name)
        self.views = [torch.as_tensor(v, dtype=torch.float32).contiguous() for v in views]
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if not self.views:
            raise DataError(f"dataset '{self.name}': no views")
        n = self.labels.shape[0] if self.labels is not None else self.views[0].shape[0]
        for i, v in enumerate(self.views):
            if v.ndim != 2 or v.shape[0] != n:
                raise DataError(
                    f"dataset '{self.name}': view {i} has shape {tuple(v.shape)}, "
                    f"expected ({n}, d) to match {n} {'labels' if self.labels is not None else 'samples of view 0'}"
                )
        self._n = int(n)
        self._n_classes = None if self.labels is None else int(torch.unique(self.labels).numel())
        if n_clusters is None and self.labels is None:
            raise ConfigError(f"dataset '{self.name}': the data have no labels, so set dataset.n_clusters (the number of clusters to find)")
        self.n_clusters = self.n_classes if n_clusters is None else _check_n_clusters(n_clusters, self.name)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.checksum = str(checksum)
        self.source = str(source)
        if view_names is None:
            view_names = [f"view_{i}" for i in range(len(self.views))]
        self.view_names = [str(s) for s in view_names]

    @property
    def n_samples(self) -> int:
        return self._n

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    @property
    def n_views(self) -> int:
        return len(self.views)

    @property
    def dims(self) -> list[int]:
        return [int(v.shape[1]) for v in self.views]

    @property
    def n_classes(self) -> int | None:
        return self._n_classes

    def __len__(self) -> int:
        return self.n_samples

    def __getitem__(self, index: int) -> tuple[list[torch.Tensor], torch.Tensor, int]:
        i = int(index)
        label = self.labels[i] if self.labels is not None else torch.tensor(-1)
        return [v[i] for v in self.views], label, i

    def __repr__(self) -> str:
        return (
            f"MultiViewData(name={self.name!r}, n_samples={self.n_samples}, "
            f"n_views={self.n_views}, dims={self.dims}, n_classes={self.n_classes}, "
            f"n_clusters={self.n_clusters})"
        )


def _check_n_clusters(n_clusters: Any, name: str) -> int:
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
        raise ConfigError(f"dataset '{name}': n_clusters must be a positive integer or null, got {n_clusters!r}")
    return int(n_clusters)


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------
def preprocess_view(x: Any, how: str = "none") -> np.ndarray:
    """Preprocess one view ``x`` of shape ``(n, d)``; computed in float64, returned as float32.

    ``how``:
        ``"none"``      unchanged;
        ``"minmax"``    each feature scaled to ``[0, 1]``; constant features become 0;
        ``"standard"``  each feature to zero mean and unit (population) std; constant -> 0;
        ``"l2"``        each sample (row) scaled to unit L2 norm; all-zero rows stay zero.
    """
    if not isinstance(how, str) or how not in PREPROCESS_OPTIONS:
        raise DataError(f"unknown preprocess option {how!r} (choose from {', '.join(PREPROCESS_OPTIONS)})")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"preprocess_view expects a 2-D (n, d) array, got shape {x.shape}")
    if how == "none" or x.size == 0:
        return x.astype(np.float32)
    if how == "minmax":
        lo = x.min(axis=0)
        span = x.max(axis=0) - lo
        const = span == 0
        out = (x - lo) / np.where(const, 1.0, span)
        out[:, const] = 0.0
    elif how == "standard":
        # Constant features are detected exactly (max == min): their float std may be a tiny
        # non-zero rounding residue that would otherwise blow noise up to +-1.
        const = x.max(axis=0) == x.min(axis=0)
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        out = (x - mean) / np.where(const | (std == 0), 1.0, std)
        out[:, const] = 0.0
    else:  # l2
        norm = np.sqrt(np.einsum("ij,ij->i", x, x))
        out = x / np.where(norm > 0, norm, 1.0)[:, None]
    return out.astype(np.float32)


def _check_loader_options(name: str, preprocess: Any, orientation: str, n_clusters: Any) -> list[str] | str:
    """The options every file loader shares, checked before the file is read; returns the
    per-view preprocessing."""
    prep = _preprocess_list(preprocess, name)
    if orientation not in ORIENTATIONS:
        raise DataError(f"dataset '{name}': unknown orientation {orientation!r} (choose from {', '.join(ORIENTATIONS)})")
    if n_clusters is not None:
        _check_n_clusters(n_clusters, name)
    return prep


def _preprocess_list(preprocess: Any, name: str) -> list[str] | str:
    """Validate ``preprocess`` (a string or one entry per view) before any file is read."""
    if isinstance(preprocess, str) or preprocess is None:
        how = "none" if preprocess is None else preprocess
        if how not in PREPROCESS_OPTIONS:
            raise DataError(
                f"dataset '{name}': unknown preprocess option {how!r} "
                f"(choose from {', '.join(PREPROCESS_OPTIONS)}, or a list with one per view)"
            )
        return how
    try:
        items = list(preprocess)  # list, tuple, omegaconf ListConfig
    except TypeError:
        raise DataError(f"dataset '{name}': preprocess must be a string or a list of strings, got {preprocess!r}") from None
    for i, how in enumerate(items):
        if not isinstance(how, str) or how not in PREPROCESS_OPTIONS:
            raise DataError(
                f"dataset '{name}': unknown preprocess option {how!r} at preprocess[{i}] (choose from {', '.join(PREPROCESS_OPTIONS)})"
            )
    return items


# --------------------------------------------------------------------------------------------
# File access
# --------------------------------------------------------------------------------------------
def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_hdf5(head: bytes) -> bool:
    # MATLAB v7.3 files start with a 512-byte text header (HDF5 user block); the HDF5 superblock
    # signature then sits at offset 512. Plain HDF5 files have it at offset 0.
    return head[:8] == _HDF5_SIGNATURE or head[512:520] == _HDF5_SIGNATURE


class _Source:
    """Uniform access to the variables of one file (npz, mat v5 or mat v7.3).

    ``get(key)`` returns a numpy array (or scipy.sparse matrix) in MATLAB/numpy orientation;
    ``cell(key)`` returns the elements of a cell array in MATLAB's linear order.
    """

    kind = ""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path

    def keys(self) -> list[str]:
        raise NotImplementedError

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def missing(self, key: str, what: str) -> DataError:
        present = ", ".join(self.keys()) or "(none)"
        return DataError(f"dataset '{self.name}': {what} key {key!r} not found in {self.path} (keys present: {present})")

    def close(self) -> None:
        pass


class _NpzSource(_Source):
    kind = "npz"

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name, path)
        try:
            self._z = np.load(path, allow_pickle=False)
            self._keys = list(self._z.files)
        except Exception as e:  # noqa: BLE001 - any parse failure is a corrupt file
            raise DataError(f"dataset '{name}': cannot read {path} as a .npz file ({_one_line(e)})") from None

    def keys(self) -> list[str]:
        return self._keys

    def get(self, key: str, what: str = "") -> Any:
        if key not in self._keys:
            raise self.missing(key, what)
        try:
            return self._z[key]
        except Exception as e:  # noqa: BLE001
            raise DataError(f"dataset '{self.name}': cannot read key {key!r} from {self.path} ({_one_line(e)})") from None

    def close(self) -> None:
        self._z.close()


class _MatV5Source(_Source):
    kind = "mat-v5"

    def __init__(self, name: str, path: Path, mat: dict) -> None:
        super().__init__(name, path)
        self._mat = {k: v for k, v in mat.items() if not k.startswith("__")}

    def keys(self) -> list[str]:
        return list(self._mat)

    def get(self, key: str, what: str = "") -> Any:
        if key not in self._mat:
            raise self.missing(key, what)
        return self._mat[key]

    def cell(self, key: str) -> list[Any]:
        value = self.get(key, "cell")
        if not (isinstance(value, np.ndarray) and value.dtype == object):
            raise DataError(
                f"dataset '{self.name}': {key!r} in {self.path} is not a cell array "
                f"(it is {_describe(value)}); use view_keys for named arrays"
            )
        out = []
        for element in value.ravel(order="F"):  # MATLAB linear (column-major) order
            while isinstance(element, np.ndarray) and element.dtype == object and element.size == 1:
                element = element.item()  # nested 1x1 cell
            out.append(element)
        return out


class _MatV73Source(_Source):
    kind = "mat-v7.3"

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name, path)
        import h5py

        self._h5py = h5py
        try:
            self._f = h5py.File(path, "r")
        except Exception as e:  # noqa: BLE001
            raise DataError(f"dataset '{name}': cannot read {path} as a MATLAB v7.3 (HDF5) file ({_one_line(e)})") from None

    def keys(self) -> list[str]:
        return [k for k in self._f.keys() if not k.startswith("#")]

    def _read(self, obj: Any, label: str) -> Any:
        """Read one MATLAB variable (dataset, or sparse group) in MATLAB's shape."""
        h5py = self._h5py
        attrs = obj.attrs
        if isinstance(obj, h5py.Group):
            if "MATLAB_sparse" in attrs:
                import scipy.sparse as sp

                n_rows = int(attrs["MATLAB_sparse"])
                jc = obj["jc"][()].astype(np.int64)
                ir = obj["ir"][()].astype(np.int64) if "ir" in obj else np.zeros(0, np.int64)
                data = obj["data"][()] if "data" in obj else np.zeros(0)
                if data.dtype.names:  # complex sparse
                    raise DataError(f"dataset '{self.name}': {label} in {self.path} is a complex sparse matrix")
                return sp.csc_matrix((data, ir, jc), shape=(n_rows, len(jc) - 1))
            raise DataError(
                f"dataset '{self.name}': {label} in {self.path} is a MATLAB "
                f"{_attr_str(attrs.get('MATLAB_class', b'struct'))}, not a numeric array"
            )
        if "MATLAB_empty" in attrs and int(np.asarray(attrs["MATLAB_empty"]).ravel()[0]):
            # Empty arrays store their (MATLAB) dimensions as data.
            dims = np.asarray(obj[()]).ravel().astype(np.int64)
            return np.zeros(tuple(int(d) for d in dims[::-1]) if dims.size else (0, 0))
        matlab_class = _attr_str(attrs.get("MATLAB_class", b""))
        if matlab_class in ("char", "struct", "function_handle") or matlab_class.startswith("string"):
            raise DataError(f"dataset '{self.name}': {label} in {self.path} is a MATLAB {matlab_class}, not a numeric array")
        value = obj[()]
        if h5py.check_dtype(ref=obj.dtype) is not None:
            return value  # object references (a cell); handled by cell()
        value = np.asarray(value)
        if value.dtype.names and set(value.dtype.names) >= {"real", "imag"}:
            raise DataError(f"dataset '{self.name}': {label} in {self.path} is complex")
        return value.T  # back to MATLAB's (row, column) order

    def get(self, key: str, what: str = "") -> Any:
        if key not in self.keys():
            raise self.missing(key, what)
        return self._read(self._f[key], repr(key))

    def cell(self, key: str) -> list[Any]:
        if key not in self.keys():
            raise self.missing(key, "cell")
        obj = self._f[key]
        h5py = self._h5py
        if not isinstance(obj, h5py.Dataset) or h5py.check_dtype(ref=obj.dtype) is None:
            raise DataError(
                f"dataset '{self.name}': {key!r} in {self.path} is not a cell array "
                f"(MATLAB_class {_attr_str(obj.attrs.get('MATLAB_class', b'?'))}); "
                "use view_keys for named arrays"
            )
        refs = obj[()]
        out = []
        # h5py's C-order flattening of the stored (transposed) array is MATLAB's linear order.
        for j, ref in enumerate(np.asarray(refs).ravel()):
            if not ref:
                raise DataError(f"dataset '{self.name}': {key}{{{j + 1}}} in {self.path} is a null reference")
            out.append(self._read(self._f[ref], f"{key}{{{j + 1}}}"))
        return out

    def close(self) -> None:
        self._f.close()


def _attr_str(value: Any) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("ascii", "replace")
    return str(value)


def _describe(value: Any) -> str:
    import scipy.sparse as sp

    if sp.issparse(value):
        return f"a sparse {value.shape[0]}x{value.shape[1]} matrix"
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return f"a cell array of shape {value.shape}"
        if value.dtype.names:
            return f"a struct array of shape {value.shape}"
        if value.dtype.kind in "USV":
            return f"a text array of shape {value.shape}"
        return f"a {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _open(name: str, path: Path) -> _Source:
    try:
        with open(path, "rb") as f:
            head = f.read(520)
    except OSError as e:
        raise DataError(f"dataset '{name}': cannot read {path} ({_one_line(e)})") from None
    if not head:
        raise DataError(f"dataset '{name}': file is empty: {path}")
    if path.suffix.lower() == ".npz" or head[:4] == _ZIP_SIGNATURE:
        return _NpzSource(name, path)
    if _is_hdf5(head):
        return _MatV73Source(name, path)
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except NotImplementedError:  # scipy's answer to a v7.3 file whose header it recognises
        return _MatV73Source(name, path)
    except Exception as e:  # noqa: BLE001 - any parse failure is a corrupt file
        raise DataError(f"dataset '{name}': cannot read {path} as a MATLAB .mat file ({_one_line(e)})") from None
    return _MatV5Source(name, path, mat)


# --------------------------------------------------------------------------------------------
# Conversion helpers
# --------------------------------------------------------------------------------------------
def _to_dense_2d(value: Any, name: str, label: str, path: Path, samples_first_nd: bool) -> np.ndarray:
    import scipy.sparse as sp

    if sp.issparse(value):
        value = value.toarray()
    if not isinstance(value, np.ndarray):
        value = np.asarray(value)
    if value.dtype == object or value.dtype.names or value.dtype.kind in "USV":
        raise DataError(
            f"dataset '{name}': view {label} in {path} is not a numeric array "
            f"({_describe(value)}{'; use cell_key for a cell array' if value.dtype == object else ''})"
        )
    if value.dtype.kind == "c":
        raise DataError(f"dataset '{name}': view {label} in {path} is complex-valued")
    if value.ndim == 1:
        value = value[:, None]
    elif value.ndim > 2:
        if not samples_first_nd:
            raise DataError(f"dataset '{name}': view {label} in {path} has {value.ndim} axes (shape {value.shape}); expected a 2-D matrix")
        value = value.reshape(value.shape[0], -1)
    if value.size == 0:
        raise DataError(f"dataset '{name}': view {label} in {path} is empty (shape {value.shape})")
    return value


def _labels_vector(value: Any, name: str, key: str, path: Path) -> np.ndarray:
    import scipy.sparse as sp

    if sp.issparse(value):
        value = value.toarray()
    y = np.asarray(value)
    if y.dtype == object or y.dtype.kind == "c" or y.dtype.names:
        raise DataError(f"dataset '{name}': labels {key!r} in {path} are not numeric ({_describe(y)})")
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    elif y.ndim == 0:
        y = y.reshape(1)
    if y.ndim != 1:
        raise DataError(f"dataset '{name}': labels {key!r} in {path} have shape {y.shape}; expected a vector (n,), (n, 1) or (1, n)")
    if y.size == 0:
        raise DataError(f"dataset '{name}': labels {key!r} in {path} are empty")
    if y.dtype.kind == "f":
        bad = int((~np.isfinite(y)).sum())
        if bad:
            raise DataError(f"dataset '{name}': labels {key!r} in {path} contain {bad} NaN/inf values")
    return y


def _orient(x: np.ndarray, orientation: str, n_labels: int, name: str, label: str, path: Path) -> np.ndarray:
    if orientation == "samples_first":
        return x
    if orientation == "features_first":
        return x.T
    rows, cols = x.shape
    if rows == n_labels and cols == n_labels:
        raise DataError(
            f"dataset '{name}': view {label} in {path} is square ({rows}x{cols}), so "
            "orientation 'auto' is ambiguous; set orientation: samples_first or features_first"
        )
    if rows == n_labels:
        return x
    if cols == n_labels:
        return x.T
    raise DataError(
        f"dataset '{name}': label count mismatch in {path}: {n_labels} labels but view {label} "
        f"has shape {rows}x{cols} (neither axis is {n_labels})"
    )


# --------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------
def load_multiview(
    name: str,
    path: str | os.PathLike,
    view_keys: Sequence[str] | None = None,
    cell_key: str | None = None,
    label_key: str = "Y",
    orientation: Literal["auto", "samples_first", "features_first"] = "auto",
    preprocess: str | Sequence[str] = "none",
    n_clusters: int | None = None,
    source: str | None = None,
    views: Sequence[int] | None = None,
) -> MultiViewData:
    """Load a multi-view dataset from a ``.npz`` or ``.mat`` (v5 / v7.3) file.

    Args:
        name: dataset name, used in messages and kept on the result.
        path: the file. ``.npz`` files are read as the SDCIB/CoMVC format; anything else is
            read as a MATLAB file (v7.3 detected by its HDF5 signature).
        view_keys: names of the arrays holding the views, in order (``.mat``; or ``.npz`` to
            override ``view_0..``). Mutually exclusive with ``cell_key``.
        cell_key: name of a cell array (1xV or Vx1) holding one view per cell (``.mat``).
        label_key: name of the label array (``.npz`` falls back to ``labels``).
        orientation: ``samples_first`` (n, d), ``features_first`` (d, n) or ``auto``; shapes are
            as MATLAB / scipy report them, also for v7.3 files (see the module docstring).
        preprocess: one of ``none``, ``minmax``, ``standard``, ``l2``, or a list with one per view.
        n_clusters: number of clusters; ``None`` means the number of classes.
        source: where a user can obtain the file; quoted when the file is missing.
        views: 0-based indices of the views to keep, in this order (after ``view_keys`` /
            ``cell_key`` have been read), e.g. ``+dataset.views=[1,2]`` for a paper that uses two
            of a file's views; ``None`` keeps them all. ``preprocess`` lists one entry per kept view.
    """
    name = str(name)
    prep = _check_loader_options(name, preprocess, orientation, n_clusters)
    if path is None or str(path) == "":
        raise DataError(f"dataset '{name}': no path given (set dataset.path or paths.data_dir)")
    p = Path(os.path.expanduser(os.fspath(path)))
    if not p.is_file():
        where = f"obtain it from: {source}; " if source else ""
        what = "not a file" if p.exists() else "file not found"
        raise DataError(f"dataset '{name}': {what}: {p} ({where}set paths.data_dir)")
    if view_keys is not None and not isinstance(view_keys, str):
        view_keys = [str(k) for k in view_keys]
    elif isinstance(view_keys, str):
        view_keys = [view_keys]
    if view_keys is not None and len(view_keys) == 0:
        raise DataError(f"dataset '{name}': view_keys is empty")

    src = _open(name, p)
    try:
        raw_views, view_names, y, label_used = _read_views_and_labels(src, name, p, view_keys, cell_key, label_key)
    finally:
        src.close()
    raw_views, view_names = select_views(name, p, raw_views, view_names, views)

    n_labels = int(y.shape[0])
    views = []
    for x, vname in zip(raw_views, view_names):
        views.append(_orient(x, "samples_first" if src.kind == "npz" else orientation, n_labels, name, vname, p))
    counts = [int(v.shape[0]) for v in views]
    if len(set(counts)) > 1:
        detail = ", ".join(f"{vn}={c}" for vn, c in zip(view_names, counts))
        raise DataError(f"dataset '{name}': views in {p} have different sample counts ({detail}); check orientation")
    if counts[0] != n_labels:
        raise DataError(
            f"dataset '{name}': label count mismatch in {p}: {label_used!r} has {n_labels} labels "
            f"but the views have {counts[0]} samples (check orientation)"
        )
    for v, vname in zip(views, view_names):
        if v.dtype.kind == "f":
            bad = int((~np.isfinite(v)).sum())
            if bad:
                raise DataError(f"dataset '{name}': view {vname} in {p} contains {bad} NaN/inf values")

    if isinstance(prep, str):
        prep = [prep] * len(views)
    elif len(prep) != len(views):
        raise DataError(f"dataset '{name}': preprocess has {len(prep)} entries but {p} has {len(views)} views")
    out_views = [torch.from_numpy(preprocess_view(v, how)) for v, how in zip(views, prep)]

    _, inverse = np.unique(y, return_inverse=True)
    labels = torch.from_numpy(inverse.reshape(-1).astype(np.int64))
    return MultiViewData(
        name=name,
        views=out_views,
        labels=labels,
        n_clusters=n_clusters,
        checksum=file_sha256(p),
        source=str(p),
        view_names=view_names,
    )


def select_views(name: str, path: Path, raw_views: list, view_names: list[str], views: Sequence[int] | None) -> tuple[list, list[str]]:
    """Keep the views at the 0-based indices ``views`` (``dataset.views``), in that order."""
    if views is None:
        return raw_views, view_names
    if isinstance(views, (str, bytes)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in views):
        raise DataError(f"dataset '{name}': dataset.views={views!r} must be a list of view indices, e.g. [0, 2]")
    chosen = list(views)
    bad = [i for i in chosen if not 0 <= i < len(raw_views)]
    if not chosen or bad or len(set(chosen)) != len(chosen):
        why = "is empty" if not chosen else (f"has {bad} outside 0..{len(raw_views) - 1}" if bad else "repeats a view")
        raise DataError(f"dataset '{name}': dataset.views={chosen} {why}; {path} has {len(raw_views)} views ({', '.join(view_names)})")
    return [raw_views[i] for i in chosen], [view_names[i] for i in chosen]


def _read_views_and_labels(
    src: _Source,
    name: str,
    p: Path,
    view_keys: list[str] | None,
    cell_key: str | None,
    label_key: str,
) -> tuple[list[np.ndarray], list[str], np.ndarray, str]:
    if src.kind == "npz":
        keys = src.keys()
        if view_keys is None:
            if "n_views" in keys:
                try:
                    n_views = int(np.asarray(src.get("n_views")).reshape(-1)[0])
                except (ValueError, TypeError, IndexError):
                    raise DataError(f"dataset '{name}': key 'n_views' in {p} is not an integer") from None
            else:
                n_views = sum(1 for k in keys if k.startswith("view_") and k[5:].isdigit())
                if n_views == 0:
                    raise src.missing("n_views", "view count")
            view_keys = [f"view_{i}" for i in range(n_views)]
        raw = [src.get(k, "view") for k in view_keys]
        names = list(view_keys)
        if "view_names" in keys and len(src.get("view_names")) == len(raw):
            names = [str(s) for s in src.get("view_names")]
        used = label_key if label_key in keys else "labels"
        if used not in keys:
            raise DataError(f"dataset '{name}': labels key {label_key!r} (or 'labels') not found in {p} (keys present: {', '.join(keys)})")
        y = _labels_vector(src.get(used), name, used, p)
        views = [_to_dense_2d(x, name, vn, p, samples_first_nd=True) for x, vn in zip(raw, names)]
        return views, names, y, used

    if view_keys is not None and cell_key is not None:
        raise DataError(f"dataset '{name}': set only one of cell_key ({cell_key!r}) and view_keys ({view_keys}) for {p}")
    if view_keys is None and cell_key is None:
        raise DataError(
            f"dataset '{name}': set cell_key or view_keys to say where the views are in {p} (keys present: {', '.join(src.keys())})"
        )
    if cell_key is not None:
        raw = src.cell(str(cell_key))
        names = [f"{cell_key}{{{i + 1}}}" for i in range(len(raw))]
        if not raw:
            raise DataError(f"dataset '{name}': cell {cell_key!r} in {p} is empty")
    else:
        raw = [src.get(k, "view") for k in view_keys]
        names = list(view_keys)
    y = _labels_vector(src.get(str(label_key), "label"), name, str(label_key), p)
    views = [_to_dense_2d(x, name, vn, p, samples_first_nd=False) for x, vn in zip(raw, names)]
    return views, names, y, str(label_key)
