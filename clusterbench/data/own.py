"""Your own feature data without writing a config: ``dataset=features dataset.path=<file>``.

:func:`load_features` reads one file into a :class:`~clusterbench.data.multiview.MultiViewData`:

* ``.npy``: one array ``(n, d)`` (more axes are flattened to ``(n, d1*d2*...)``);
* ``.npz``: the views ``view_0, view_1, ...`` (the SDCIB / CoMVC format), or the arrays named
  in ``view_keys``, or else every array except the labels (one view each, in file order);
* ``.csv`` / ``.tsv`` / ``.txt``: one row per sample; a header row is recognised when its cells
  are not numbers; a column named ``label``, ``labels``, ``y``, ``class`` or ``target`` (or the
  one named by ``label_column``) holds the labels (numbers or names); the rest are features;
* ``.pt`` / ``.pth``: a tensor, a list of tensors (views), or a dict of them (keys as for
  ``.npz``), read with ``torch.load(weights_only=True)`` (nothing is unpickled);
* ``.mat`` (v5 and v7.3): ``cell_key`` or ``view_keys`` as for the named datasets, or, when
  neither is given, the one cell array (one view per cell) or else every numeric array except
  the labels.

Labels are optional: ``label_key`` names them (default: the first of ``labels``, ``label``,
``y``, ``Y``, ``gt``, ``truth``, ``gnd``, ``target``, ``targets`` that the file has), or
``labels`` names a separate file (``.npy``, ``.txt``, ``.csv``: one value per sample). Without
labels, ``n_clusters`` is required and runs report label-free scores (silhouette,
Calinski-Harabasz, cluster sizes) instead of ACC / NMI / ARI. Label values of any kind (numbers
or names) are mapped to ``0..C-1`` in sorted order and kept as the class names.

``orientation`` is ``samples_first`` (``(n, d)``, numpy's habit; the default),
``features_first`` (``(d, n)``, transposed on load) or ``auto`` (the axis whose length is the
number of labels, or, without labels, the axis every view shares).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch

from clusterbench.data.multiview import (
    MultiViewData,
    _check_loader_options,
    _labels_vector,
    _open,
    _to_dense_2d,
    file_sha256,
    preprocess_view,
)
from clusterbench.errors import DataError

__all__ = ["load_features", "load_image_array", "as_uint8_images", "feature_data", "image_data", "LABEL_KEYS", "FEATURE_SUFFIXES"]

LABEL_KEYS = ("labels", "label", "y", "Y", "gt", "truth", "gnd", "target", "targets")
CSV_LABEL_COLUMNS = ("label", "labels", "y", "class", "target")
FEATURE_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".txt", ".pt", ".pth", ".mat")
_NOT_VIEWS = {"n_views", "view_names"}


def load_features(  # noqa: C901 - argument checks in turn, each its own one-line error
    name: str | None = None,
    path: str | None = None,
    labels: str | None = None,
    label_key: str | None = None,
    label_column: str | int | None = None,
    view_keys: list[str] | None = None,
    cell_key: str | None = None,
    orientation: Literal["samples_first", "features_first", "auto"] = "samples_first",
    preprocess: str | list[str] = "none",
    n_clusters: int | None = None,
) -> MultiViewData:
    """One or several feature views (and optional labels) from one file; see the module docstring.
    `name` (what results and report call the data) defaults to the file's name without suffix."""
    name = str(name or (Path(str(path)).stem if path else "features"))
    prep = _check_loader_options(name, preprocess, orientation, n_clusters)
    if path is None or str(path) == "":
        raise DataError(f"dataset '{name}': no file given: set dataset.path=<file> ({', '.join(FEATURE_SUFFIXES)})")
    p = Path(os.path.expanduser(os.fspath(path)))
    if not p.is_file():
        raise DataError(f"dataset '{name}': {'not a file' if p.exists() else 'file not found'}: {p}")
    if view_keys is not None:
        view_keys = [view_keys] if isinstance(view_keys, str) else [str(k) for k in view_keys]
        if not view_keys:
            raise DataError(f"dataset '{name}': dataset.view_keys is empty")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        views, view_names, y, label_used = [_npy(p, name)], ["x"], None, None
    elif suffix in (".csv", ".tsv", ".txt"):
        views, view_names, y, label_used = _table(p, name, label_column)
    elif suffix in (".pt", ".pth"):
        views, view_names, y, label_used = _torch_file(p, name, view_keys, label_key)
    elif suffix in (".npz", ".mat") or suffix == "":
        views, view_names, y, label_used = _keyed_file(p, name, view_keys, cell_key, label_key)
    else:
        raise DataError(f"dataset '{name}': cannot read {p}: unknown file type {suffix!r} (use one of {', '.join(FEATURE_SUFFIXES)})")
    if labels is not None:
        if y is not None:
            raise DataError(f"dataset '{name}': {p} holds labels ({label_used!r}) and dataset.labels={labels} names another file; keep one")
        y, label_used = _label_file(labels, name), str(labels)
    views = _orient_all(views, view_names, orientation, None if y is None else int(y.shape[0]), name, p)
    n = int(views[0].shape[0])
    for v, vname in zip(views, view_names):
        if v.shape[0] != n:
            detail = ", ".join(f"{vn}={int(x.shape[0])}" for vn, x in zip(view_names, views))
            raise DataError(f"dataset '{name}': views in {p} have different sample counts ({detail}); check dataset.orientation")
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise DataError(f"dataset '{name}': view {vname} in {p} contains {int((~np.isfinite(v)).sum())} NaN/inf values")
    if y is not None and y.shape[0] != n:
        raise DataError(f"dataset '{name}': {y.shape[0]} labels ({label_used}) but {n} samples in {p}")
    if isinstance(prep, str):
        prep = [prep] * len(views)
    elif len(prep) != len(views):
        raise DataError(f"dataset '{name}': preprocess has {len(prep)} entries but {p} has {len(views)} views")
    checksum = file_sha256(p) if labels is None else file_sha256(p) + "+" + file_sha256(Path(os.path.expanduser(str(labels))))[:16]
    return feature_data(name, views, view_names, y, prep, n_clusters, checksum, str(p.resolve()))


def feature_data(
    name: str,
    views: Sequence[np.ndarray],
    view_names: Sequence[str],
    y: np.ndarray | None,
    preprocess: list[str],
    n_clusters: int | None,
    checksum: str,
    source: str,
) -> MultiViewData:
    """Checked (n, d) views (and labels of any values) as a MultiViewData: each view preprocessed,
    the labels mapped to 0..C-1 in sorted order with their values kept as class names. What a
    file read by load_features and an array held in memory (clusterbench.Clusterer) become."""
    out = [torch.from_numpy(preprocess_view(v, how)) for v, how in zip(views, preprocess)]
    labels, class_names = _class_indices(y)
    return MultiViewData(
        name=name,
        views=out,
        labels=labels,
        n_clusters=n_clusters,
        checksum=checksum,
        source=source,
        view_names=list(view_names),
        class_names=class_names,
    )


def _class_indices(y: np.ndarray | None) -> tuple[torch.Tensor | None, list[str] | None]:
    if y is None:
        return None, None
    values, inverse = np.unique(y, return_inverse=True)
    return torch.from_numpy(inverse.reshape(-1).astype(np.int64)), [_name(v) for v in values]


def _name(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _numeric(x: Any, name: str, label: str, p: Path) -> np.ndarray:
    return _to_dense_2d(np.asarray(x), name, label, p, samples_first_nd=True)


def _npy(p: Path, name: str) -> np.ndarray:
    try:
        x = np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any parse failure is an unreadable file
        raise DataError(f"dataset '{name}': cannot read {p} as a .npy array ({type(e).__name__}: {e})") from None
    return _numeric(x, name, "x", p)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _table(p: Path, name: str, label_column: str | int | None) -> tuple[list[np.ndarray], list[str], np.ndarray | None, str | None]:  # noqa: C901 - header, delimiter and label-column cases of a CSV, one branch each
    with open(p, newline="") as handle:
        sample = handle.read(65536)
        handle.seek(0)
        delimiter = "\t" if p.suffix.lower() == ".tsv" else None
        if delimiter is None:
            try:
                delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t ").delimiter
            except csv.Error:
                delimiter = ","
        rows = [row for row in csv.reader(handle, delimiter=delimiter, skipinitialspace=True) if row and any(c.strip() for c in row)]
    if not rows:
        raise DataError(f"dataset '{name}': {p} holds no rows")
    width = len(rows[0])
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise DataError(f"dataset '{name}': {p} holds a header but no rows")
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataError(f"dataset '{name}': row {i + 1 + (header is not None)} of {p} has {len(row)} cells, the first has {width}")
    column = None
    if label_column is not None:
        if isinstance(label_column, int) or (isinstance(label_column, str) and label_column.lstrip("-").isdigit()):
            column = int(label_column)
            if not -width <= column < width:
                raise DataError(f"dataset '{name}': dataset.label_column={label_column} but {p} has {width} columns")
            column %= width
        elif header is not None and label_column in header:
            column = header.index(label_column)
        else:
            raise DataError(
                f"dataset '{name}': dataset.label_column={label_column!r} is not a column of {p} "
                f"(columns: {', '.join(header) if header else f'{width} unnamed'})"
            )
    elif header is not None:
        named = [i for i, h in enumerate(header) if h.lower() in CSV_LABEL_COLUMNS]
        column = named[0] if named else None
    cells = np.array(rows, dtype=object)
    feature_columns = [i for i in range(width) if i != column]
    if not feature_columns:
        raise DataError(f"dataset '{name}': {p} has no feature columns besides the labels")
    try:
        x = cells[:, feature_columns].astype(np.float64)
    except ValueError:
        bad = next((r, c) for r in range(len(rows)) for c in feature_columns if not _is_number(rows[r][c]))
        raise DataError(
            f"dataset '{name}': {p} row {bad[0] + 1 + (header is not None)}, column "
            f"{header[bad[1]] if header else bad[1]}: {rows[bad[0]][bad[1]]!r} is not a number "
            "(name the label column with dataset.label_column)"
        ) from None
    y = None
    if column is not None:
        raw = [c.strip() for c in cells[:, column]]
        y = np.array([float(c) for c in raw]) if all(_is_number(c) for c in raw) else np.array(raw)
    label_used = None if column is None else (header[column] if header else f"column {column}")
    return [x], ["x"], y, label_used


def _torch_file(p: Path, name: str, view_keys: list[str] | None, label_key: str | None):
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"dataset '{name}': cannot read {p} with torch.load(weights_only=True) ({type(e).__name__}: {e})") from None

    def array(v: Any, label: str) -> np.ndarray:
        if isinstance(v, torch.Tensor):
            return v.detach().cpu().numpy()
        if isinstance(v, np.ndarray):
            return v
        raise DataError(f"dataset '{name}': {label} in {p} is a {type(v).__name__}, not a tensor")

    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return [_numeric(array(obj, "the tensor"), name, "x", p)], ["x"], None, None
    if isinstance(obj, (list, tuple)):
        if not obj:
            raise DataError(f"dataset '{name}': {p} holds an empty list")
        names = [f"view_{i}" for i in range(len(obj))]
        return [_numeric(array(v, n), name, n, p) for v, n in zip(obj, names)], names, None, None
    if isinstance(obj, dict):
        arrays = {str(k): v for k, v in obj.items()}
        return _pick(arrays, list(arrays), p, name, view_keys, label_key, lambda k: array(arrays[k], repr(k)))
    raise DataError(f"dataset '{name}': {p} holds a {type(obj).__name__}; expected a tensor, a list of tensors or a dict of them")


def _pick(arrays: Any, keys: list[str], p: Path, name: str, view_keys, label_key, get) -> tuple:
    """Views and labels of a keyed file (npz, pt dict): view_keys, or view_0.., or all but the labels."""
    if label_key is not None and label_key not in keys:
        raise DataError(f"dataset '{name}': dataset.label_key={label_key!r} not found in {p} (keys present: {', '.join(keys)})")
    used = label_key if label_key is not None else next((k for k in LABEL_KEYS if k in keys), None)
    if view_keys is None:
        numbered = sorted((k for k in keys if k.startswith("view_") and k[5:].isdigit()), key=lambda k: int(k[5:]))
        view_keys = numbered or [k for k in keys if k != used and k not in _NOT_VIEWS]
    if not view_keys:
        raise DataError(f"dataset '{name}': no feature arrays in {p} (keys present: {', '.join(keys)})")
    for k in view_keys:
        if k not in keys:
            raise DataError(f"dataset '{name}': view key {k!r} not found in {p} (keys present: {', '.join(keys)})")
    views = [_numeric(get(k), name, k, p) for k in view_keys]
    y = None if used is None else _labels_vector(get(used), name, used, p)
    return views, list(view_keys), y, used


def _keyed_file(p: Path, name: str, view_keys, cell_key, label_key):
    src = _open(name, p)
    try:
        keys = src.keys()
        if src.kind == "npz":
            if cell_key is not None:
                raise DataError(f"dataset '{name}': dataset.cell_key is for .mat files; {p} is a .npz (use dataset.view_keys)")
            return _pick(src, keys, p, name, view_keys, label_key, lambda k: src.get(k, "view"))
        if view_keys is not None and cell_key is not None:
            raise DataError(f"dataset '{name}': set only one of dataset.cell_key and dataset.view_keys for {p}")
        if label_key is not None and label_key not in keys:
            raise DataError(f"dataset '{name}': dataset.label_key={label_key!r} not found in {p} (keys present: {', '.join(keys)})")
        used = label_key if label_key is not None else next((k for k in LABEL_KEYS if k in keys), None)
        if view_keys is None and cell_key is None:
            cells = [k for k in keys if k != used and _is_cell(src, k)]
            if len(cells) == 1:
                cell_key = cells[0]
            elif len(cells) > 1:
                raise DataError(f"dataset '{name}': {p} holds several cell arrays ({', '.join(cells)}); set dataset.cell_key")
            else:
                view_keys = [k for k in keys if k != used]
        if cell_key is not None:
            raw = src.cell(str(cell_key))
            names = [f"{cell_key}{{{i + 1}}}" for i in range(len(raw))]
        else:
            raw = [src.get(k, "view") for k in view_keys]
            names = list(view_keys)
        if not raw:
            raise DataError(f"dataset '{name}': no views in {p} (keys present: {', '.join(keys)})")
        views = [_to_dense_2d(x, name, vn, p, samples_first_nd=False) for x, vn in zip(raw, names)]
        y = None if used is None else _labels_vector(src.get(used, "label"), name, used, p)
        return views, names, y, used
    finally:
        src.close()


def _is_cell(src: Any, key: str) -> bool:
    try:
        src.cell(key)
        return True
    except DataError:
        return False


def _label_file(labels: str, name: str) -> np.ndarray:
    p = Path(os.path.expanduser(str(labels)))
    if not p.is_file():
        raise DataError(f"dataset '{name}': dataset.labels={labels}: file not found")
    if p.suffix.lower() == ".npy":
        try:
            y = np.load(p, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"dataset '{name}': cannot read labels {p} ({type(e).__name__}: {e})") from None
    else:
        with open(p, newline="") as handle:
            raw = [row[0].strip() for row in csv.reader(handle) if row and row[0].strip()]
        if raw and not _is_number(raw[0]):
            raw = raw[1:]  # a header
        y = np.array([float(c) for c in raw]) if all(_is_number(c) for c in raw) else np.array(raw)
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim != 1 or y.size == 0:
        raise DataError(f"dataset '{name}': labels {p} have shape {y.shape}; expected one value per sample")
    return y


def _orient_all(
    views: Sequence[np.ndarray], names: Sequence[str], orientation: str, n_labels: int | None, name: str, p: Path
) -> list[np.ndarray]:
    if orientation == "samples_first":
        return list(views)
    if orientation == "features_first":
        return [v.T for v in views]
    out = []
    if n_labels is not None:
        for v, vn in zip(views, names):
            rows, cols = v.shape
            if rows == n_labels and cols == n_labels:
                raise DataError(f"dataset '{name}': view {vn} in {p} is square; set dataset.orientation")
            if rows != n_labels and cols != n_labels:
                raise DataError(f"dataset '{name}': view {vn} in {p} has shape {rows}x{cols}, neither axis is the {n_labels} labels")
            out.append(v if rows == n_labels else v.T)
        return out
    if len({v.shape[0] for v in views}) == 1:
        return list(views)
    if len({v.shape[1] for v in views}) == 1:
        return [v.T for v in views]
    raise DataError(f"dataset '{name}': the views in {p} share no axis; set dataset.orientation")


def as_uint8_images(x: Any, name: str = "images") -> np.ndarray:
    """An image array as uint8 ``(n, C, H, W)``: uint8 ``(n, H, W, C)`` or ``(n, C, H, W)`` (C of 1
    or 3; a last axis of 1 or 3 means channels last), ``(n, H, W)`` grey, integers in 0..255, or
    floats. Floats in [0, 1] are scaled by 255; other non-negative floats by 255 / their maximum,
    so the brightest value becomes 255 (scikit-learn's ``load_digits().images``, 0..16 grey
    (n, 8, 8): x 255/16; a float copy of 0..255 images stays as it was when its maximum is 255).
    Negative values are refused (normalised images: pass them un-normalised)."""
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DataError(f"dataset '{name}': images must have shape (n, C, H, W), (n, H, W, C) or (n, H, W), got {x.shape}")
    if x.dtype == np.uint8:
        if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.transpose(0, 3, 1, 2)
    elif x.dtype.kind in "fiu":
        if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        lo, hi = float(x.min()), float(x.max())
        if x.dtype.kind == "f" and not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0.0):
            raise DataError(
                f"dataset '{name}': float images must be finite and non-negative (got {lo:g}..{hi:g}); "
                "pass them in [0, 1], 0..max, or as uint8 0..255"
            )
        if x.dtype.kind != "f" and not (lo >= 0 and hi <= 255):
            raise DataError(f"dataset '{name}': integer images must lie in 0..255 (got {lo:g}..{hi:g})")
        if x.dtype.kind == "f":
            scale = 255.0 if hi <= 1.0 else 255.0 / hi  # see the docstring: [0, 1] or 0..max to 0..255
            x = np.rint(x.astype(np.float64) * scale).astype(np.uint8)
        else:
            x = x.astype(np.uint8)
    else:
        raise DataError(f"dataset '{name}': images of dtype {x.dtype} (expected uint8 or floats in [0, 1])")
    if x.shape[1] not in (1, 3):
        raise DataError(f"dataset '{name}': images have {x.shape[1]} channels (expected 1 or 3), shape {x.shape}")
    return np.ascontiguousarray(x)


def load_image_array(
    name: str | None = None,
    path: str | None = None,
    key: str = "images",
    label_key: str | None = None,
    n_clusters: int | None = None,
):
    """Images from a ``.npy`` (the array) or ``.npz`` (``key``, and labels under ``label_key`` or
    one of LABEL_KEYS if present) file: see :func:`as_uint8_images` for the shapes accepted.
    What ``clusterbench.cluster`` writes for an image array."""

    name = str(name or (Path(str(path)).stem if path else "images"))
    if path is None or str(path) == "":
        raise DataError(f"dataset '{name}': no file given: set dataset.path=<.npy or .npz file>")
    p = Path(os.path.expanduser(os.fspath(path)))
    if not p.is_file():
        raise DataError(f"dataset '{name}': {'not a file' if p.exists() else 'file not found'}: {p}")
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"dataset '{name}': cannot read {p} ({type(e).__name__}: {e})") from None
    y = None
    if isinstance(z, np.ndarray):
        x = z
    else:
        with z:
            keys = list(z.files)
            if key not in keys:
                raise DataError(f"dataset '{name}': key {key!r} not found in {p} (keys present: {', '.join(keys)})")
            x = z[key]
            used = label_key if label_key is not None else next((k for k in LABEL_KEYS if k in keys), None)
            if used is not None:
                if used not in keys:
                    raise DataError(f"dataset '{name}': dataset.label_key={used!r} not found in {p} (keys present: {', '.join(keys)})")
                y = _labels_vector(z[used], name, used, p)
    if y is not None and y.shape[0] != len(x):
        raise DataError(f"dataset '{name}': {len(x)} images but {y.shape[0]} labels in {p}")
    return image_data(name, x, y, n_clusters, file_sha256(p), str(p.resolve()))


def image_data(name: str, x: Any, y: np.ndarray | None, n_clusters: int | None, checksum: str, source: str):
    """An image array (see as_uint8_images) and optional labels of any values as an ImageData."""
    from clusterbench.data.images import ImageData

    labels, class_names = _class_indices(y)
    return ImageData(
        name=name,
        images=torch.from_numpy(as_uint8_images(x, name)),
        labels=labels,
        n_clusters=n_clusters,
        checksum=checksum,
        source=source,
        class_names=class_names or [],
    )


# dataset options whose data are the user's own file or folder: their runs are named after it
OWN_DATA_OPTIONS = ("features", "image_folder", "image_array")
_CHOICE = "${hydra:runtime.choices.dataset}"


def run_folder_override(argv: Sequence[str], run_dir_pattern: str) -> str | None:
    """For a single run on the user's own data (`dataset=features dataset.path=cells.csv`), the
    override `hydra.run.dir=<train.yaml's pattern, the dataset's name in place of the option>`,
    so the folder is `<time>_kmeans_cells`, not `<time>_kmeans_features`; None otherwise (a
    multirun, a resume, a run folder given, no own data, or a pattern without the option)."""
    given: dict[str, str] = {}
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq:
            given[key.lstrip("+~")] = value.strip("'\"")
    if given.get("dataset") not in OWN_DATA_OPTIONS or _CHOICE not in run_dir_pattern:
        return None
    if any(a in ("-m", "--multirun") for a in argv) or given.get("resume") not in (None, "null") or "hydra.run.dir" in given:
        return None
    name = given.get("dataset.name") or (Path(given["dataset.path"]).stem if given.get("dataset.path") else "")
    name = re.sub(r"[^\w.+-]", "_", name)
    return f"hydra.run.dir={run_dir_pattern.replace(_CHOICE, name)}" if name else None
