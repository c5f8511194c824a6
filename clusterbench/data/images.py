"""Image datasets loaded whole into memory as ``uint8`` tensors ``(N, C, H, W)``.

One container (:class:`ImageData`) and one loader per storage format; the configs in
``configs/dataset/`` pick the loader and the files under ``${paths.data_dir}``:

* :func:`load_mnist` - MNIST / Fashion-MNIST in torchvision's raw IDX layout
  (``<root>/MNIST/raw/train-images-idx3-ubyte`` ..., plain or ``.gz``), read with numpy
  (:func:`read_idx`); ``download: true`` uses torchvision when it is installed.
* :func:`load_usps` - USPS from the common ``usps.h5`` (``train/data``, ``train/target``,
  ``test/data``, ``test/target``; rows of 256 floats in ``[0, 1]`` = 16 x 16 images).
* :func:`load_mat_images` - images stored as rows of a MATLAB matrix (COIL-20 ``fea``/``gnd``).
  MATLAB flattens column-major, so ``order: F`` (the default) rebuilds upright images.
* :func:`load_cifar` - CIFAR-10 / CIFAR-100 (20 superclasses) in torchvision's python-pickle
  layout (``<root>/cifar-10-batches-py/``, ``<root>/cifar-100-python/``), read with a restricted
  unpickler (numpy arrays and plain containers only).
* :func:`load_stl10` - STL-10 in torchvision's binary layout (``<root>/stl10_binary/*.bin``),
  optionally with the 100000 unlabelled images in :attr:`ImageData.unlabeled`.
* :func:`load_digits` - scikit-learn's 8 x 8 digits (no files needed).
* :func:`load_image_folder` - ``<path>/<class>/<image files>`` read with PIL and resized.

Train and test splits are joined by default (``split: all``; the usual protocol in deep
clustering), train first. Labels are remapped to ``0..C-1`` in sorted order of the stored
values. Every problem with the data is a one-line :class:`~clusterbench.errors.DataError`
naming the dataset, the file or folder, and what was expected.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from clusterbench.data.multiview import _check_n_clusters  # one rule for every dataset
from clusterbench.errors import ConfigError, DataError

__all__ = [
    "ImageData",
    "read_idx",
    "load_mnist",
    "load_usps",
    "load_mat_images",
    "load_digits",
    "load_image_folder",
    "load_cifar",
    "load_stl10",
    "IMAGE_EXTENSIONS",
    "MNIST_FILES",
    "CIFAR_FILES",
    "STL10_FILES",
]

Split = Literal["all", "train", "test"]
SPLITS = ("all", "train", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm")
# torchvision's raw file names, per split: (images, labels)
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_VARIANTS = {
    "MNIST": ("MNIST", "http://yann.lecun.com/exdb/mnist/ (or torchvision.datasets.MNIST)"),
    "FashionMNIST": (
        "FashionMNIST",
        "https://github.com/zalandoresearch/fashion-mnist (or torchvision.datasets.FashionMNIST)",
    ),
    "KMNIST": ("KMNIST", "https://github.com/rois-codh/kmnist (or torchvision.datasets.KMNIST)"),
}
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# --------------------------------------------------------------------------------------------
# Container
# --------------------------------------------------------------------------------------------
@dataclass(eq=False)
class ImageData(Dataset):
    """An image dataset held in memory.

    Attributes:
        name: dataset name (from the config).
        images: uint8 tensor ``(N, C, H, W)``.
        labels: int64 tensor ``(N,)`` with values ``0..C-1``, or ``None`` for unlabelled images
            (a flat folder; then ``n_clusters`` is required).
        n_clusters: clusters to look for; ``None`` on construction means the number of classes.
        checksum: sha256 hex digest of the bytes read (all files, in reading order).
        source: the file or folder the data were read from.
        class_names: a name per class, in label order.
        split: which split(s) were loaded (``all``, ``train``, ``test``).
        unlabeled: optional uint8 tensor ``(M, C, H, W)`` of extra images without labels (STL-10's
            unlabelled split), for instance-only training steps; not counted in ``n_samples``,
            not indexed by ``ds[i]`` and never evaluated.
        n_classes, n_samples: computed.

    ``n_views`` is 1 and ``dims`` is ``[C*H*W]`` (as for :class:`MultiViewData`, the flattened
    width of the single view); ``image_shape`` is ``(C, H, W)``. ``ds[i]`` returns
    ``(image_i uint8 (C, H, W), label_i, i)``.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor | None
    n_clusters: int | None = None
    checksum: str = ""
    source: str = ""
    class_names: list[str] = field(default_factory=list)
    split: str = "all"
    unlabeled: torch.Tensor | None = None
    n_classes: int | None = field(init=False)
    n_samples: int = field(init=False)

    def __post_init__(self) -> None:
        self.name = str(self.name)
        self.images = torch.as_tensor(self.images)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(
                f"dataset '{self.name}': images must be a uint8 tensor (N, C, H, W), got "
                f"{self.images.dtype} of shape {tuple(self.images.shape)}"
            )
        self.images = self.images.contiguous()
        if self.labels is not None:
            self.labels = torch.as_tensor(self.labels, dtype=torch.int64).reshape(-1)
        if self.labels is not None and self.labels.shape[0] != self.images.shape[0]:
            raise DataError(f"dataset '{self.name}': {self.images.shape[0]} images but {self.labels.shape[0]} labels")
        if self.images.shape[0] == 0:
            raise DataError(f"dataset '{self.name}': no images")
        self.n_samples = int(self.images.shape[0])
        self.n_classes = None if self.labels is None else int(torch.unique(self.labels).numel())
        if self.n_clusters is None and self.labels is None:
            raise ConfigError(
                f"dataset '{self.name}': the images have no labels, so set dataset.n_clusters (the number of clusters to find)"
            )
        if self.n_clusters is None:
            self.n_clusters = self.n_classes
        else:
            self.n_clusters = _check_n_clusters(self.n_clusters, self.name)
        self.checksum = str(self.checksum)
        self.source = str(self.source)
        self.class_names = [str(c) for c in self.class_names] or [str(i) for i in range(self.n_classes or 0)]
        if self.unlabeled is not None:
            u = torch.as_tensor(self.unlabeled)
            if u.dtype != torch.uint8 or u.ndim != 4 or tuple(u.shape[1:]) != tuple(self.images.shape[1:]):
                raise DataError(
                    f"dataset '{self.name}': unlabeled images must be a uint8 tensor (M, "
                    f"{', '.join(str(int(d)) for d in self.images.shape[1:])}) like the images, got "
                    f"{u.dtype} of shape {tuple(u.shape)}"
                )
            self.unlabeled = u.contiguous()

    @property
    def n_views(self) -> int:
        return 1

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def dims(self) -> list[int]:
        c, h, w = self.image_shape
        return [c * h * w]

    @property
    def views(self) -> list[torch.Tensor]:
        """One view of flattened pixels in [0, 1] (float32, N x C*H*W): how the feature
        methods (k-means on raw pixels, SDCIB) read an image set."""
        return [self.images.flatten(1).float().div_(255.0)]

    def __len__(self) -> int:
        return self.n_samples

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        i = int(index)
        return self.images[i], (self.labels[i] if self.labels is not None else torch.tensor(-1)), i

    def __repr__(self) -> str:
        return (
            f"ImageData(name={self.name!r}, n_samples={self.n_samples}, "
            f"image_shape={self.image_shape}, n_classes={self.n_classes}, "
            f"n_clusters={self.n_clusters}, split={self.split!r}"
            + (f", unlabeled={int(self.unlabeled.shape[0])}" if self.unlabeled is not None else "")
            + ")"
        )


def _check_split(split: Any, name: str) -> str:
    if split not in SPLITS:
        raise DataError(f"dataset '{name}': unknown split {split!r} (choose from {', '.join(SPLITS)})")
    return str(split)


def _remap(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, inverse = np.unique(y, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), values


def _labelled(
    name: str,
    images: np.ndarray,
    raw_labels: np.ndarray,
    n_clusters: int | None,
    checksum: str,
    source: str,
    split: str,
    *,
    names: Sequence[str] | None = None,
    unlabeled: np.ndarray | None = None,
) -> ImageData:
    """ImageData with the raw label values mapped to 0..C-1. The class names are the stored
    values, or ``names[value]`` when the files name their classes (value = index into names)."""
    y, values = _remap(raw_labels)
    return ImageData(
        name=name,
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.from_numpy(y),
        n_clusters=n_clusters,
        checksum=checksum,
        source=source,
        class_names=[str(names[int(v)]) if names is not None else str(v) for v in values],
        split=split,
        unlabeled=None if unlabeled is None else torch.from_numpy(np.ascontiguousarray(unlabeled)),
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _where(source: str | None) -> str:
    return f"obtain it from: {source}; " if source else ""


def _path(path: Any, name: str) -> Path:
    if path is None or str(path) == "":
        raise DataError(f"dataset '{name}': no path given (set dataset.path or paths.data_dir)")
    return Path(os.path.expanduser(os.fspath(path)))


def _require_file(p: Path, name: str, expected: str, source: str | None) -> None:
    if not p.is_file():
        what = "not a file" if p.exists() else "file not found"
        raise DataError(f"dataset '{name}': {what}: {p} (expected {expected}; {_where(source)}set paths.data_dir)")


def _float_to_uint8(x: np.ndarray, name: str, label: str, p: Path) -> np.ndarray:
    """Floats in [0, 1] (or integers / floats in [0, 255]) to uint8, rounding."""
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind not in "fiu" or x.size == 0:
        raise DataError(f"dataset '{name}': {label} in {p} is not a numeric array ({x.dtype}, shape {x.shape})")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise DataError(f"dataset '{name}': {label} in {p} contains NaN/inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-6 or hi > 255 + 1e-6:
        raise DataError(f"dataset '{name}': {label} in {p} has values in [{lo:g}, {hi:g}]; expected [0, 1] or [0, 255]")
    scale = 255.0 if hi <= 1.0 + 1e-6 else 1.0
    return np.clip(np.rint(x * scale), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# IDX (MNIST family)
# --------------------------------------------------------------------------------------------
def read_idx(path: str | os.PathLike, data: bytes | None = None) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a numpy array in native byte order.

    Format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then one big-endian int32 per
    dimension and the data (row-major, big-endian). ``data`` are the file's bytes if already read.
    """
    p = Path(path)
    if data is None:
        try:
            data = p.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read IDX file {p} ({_one_line(e)})") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise DataError(f"cannot decompress IDX file {p} ({_one_line(e)})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{p} is not an IDX file (magic {data[:4].hex() or 'empty'}; expected 0000 + type code 08/09/0b/0c/0d/0e + ndim)")
    dtype = _IDX_DTYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"IDX file {p} is truncated in its header ({len(data)} bytes, {ndim} dims)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"IDX file {p} holds {len(data) - header} data bytes; shape {shape} of {dtype.name} needs {expected}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _find_raw(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _torchvision_download(
    variant: str,
    root: Path,
    name: str,
    calls: Sequence[dict[str, Any]] = ({"train": True}, {"train": False}),
    source: str | None = None,
) -> bool:
    """Run ``torchvision.datasets.<variant>(root, download=True, **kw)`` for each ``kw`` in
    ``calls``; False when torchvision is not installed (the caller says what to do by hand)."""
    try:
        import torchvision.datasets as tvd  # type: ignore[import-not-found]
    except ImportError:
        return False
    cls = getattr(tvd, variant)
    try:
        for kwargs in calls:
            cls(str(root), download=True, **kwargs)
    except Exception as e:  # noqa: BLE001 - network or mirror failures
        by_hand = f"; or put the files there by hand, from {source}" if source else ""
        raise DataError(f"dataset '{name}': torchvision could not download {variant} into {root} ({_one_line(e)}){by_hand}") from None
    return True


def load_mnist(
    name: str = "mnist",
    root: str = "data",
    variant: Literal["MNIST", "FashionMNIST", "KMNIST"] = "MNIST",
    split: Split = "all",
    download: bool = False,
    n_clusters: int | None = None,
    source: str | None = None,
) -> ImageData:
    """MNIST-family data from torchvision's raw layout ``<root>/<variant>/raw/*-ubyte[.gz]``.

    ``download: true`` fetches missing files with ``torchvision.datasets.<variant>`` when
    torchvision is installed; otherwise a missing file is a DataError naming the folder and files.
    Images come back ``(N, 1, 28, 28)``; ``split: all`` is the 60k train then the 10k test images.
    """
    name = str(name)
    split = _check_split(split, name)
    if variant not in _MNIST_VARIANTS:
        raise DataError(f"dataset '{name}': unknown variant {variant!r} (choose from {', '.join(_MNIST_VARIANTS)})")
    if n_clusters is not None:
        _check_n_clusters(n_clusters, name)
    folder_name, default_source = _MNIST_VARIANTS[variant]
    source = source or default_source
    root_p = _path(root, name)
    folder = root_p / folder_name / "raw"
    splits = ("train", "test") if split == "all" else (split,)
    stems = [s for sp in splits for s in MNIST_FILES[sp]]
    if download and any(_find_raw(folder, s) is None for s in stems):
        _torchvision_download(variant, root_p, name)
        if any(_find_raw(folder, s) is None for s in stems):
            raise DataError(
                f"dataset '{name}': download: true needs torchvision (not installed); "
                f"put {', '.join(stems)} (or .gz) in {folder} by hand, from {source}"
            )
    missing = [s for s in stems if _find_raw(folder, s) is None]
    if missing:
        raise DataError(
            f"dataset '{name}': missing in {folder}: {', '.join(missing)} (plain or .gz; "
            f"{_where(source)}or set download: true with torchvision installed; set paths.data_dir)"
        )
    h = hashlib.sha256()
    images, labels = [], []
    for sp in splits:
        arrays = []
        for stem in MNIST_FILES[sp]:
            f = _find_raw(folder, stem)
            assert f is not None
            data = f.read_bytes()
            h.update(data)
            arrays.append(read_idx(f, data))
        x, y = arrays
        fx, fy = (_find_raw(folder, s) for s in MNIST_FILES[sp])
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DataError(f"dataset '{name}': {fx} holds {x.dtype} of shape {x.shape}; expected uint8 (n, h, w)")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataError(f"dataset '{name}': {fy} holds labels of shape {y.shape}; expected ({x.shape[0]},) to match {fx}")
        images.append(x)
        labels.append(y)
    if len({x.shape[1:] for x in images}) > 1:
        raise DataError(f"dataset '{name}': train and test images in {folder} differ in size")
    x = np.concatenate(images)[:, None]
    return _labelled(name, x, np.concatenate(labels), n_clusters, h.hexdigest(), str(folder), split)


# --------------------------------------------------------------------------------------------
# USPS (HDF5)
# --------------------------------------------------------------------------------------------
def load_usps(
    name: str = "usps",
    path: str = "data/usps.h5",
    split: Split = "all",
    image_size: int = 16,
    n_clusters: int | None = None,
    source: str | None = None,
) -> ImageData:
    """USPS from an HDF5 file with ``train/data``, ``train/target``, ``test/data``, ``test/target``.

    ``data`` rows hold ``image_size**2`` floats in ``[0, 1]`` (16 x 16 = 256 for USPS); they are
    rounded to uint8 ``0..255`` and returned ``(N, 1, 16, 16)``; ``split: all`` is train then test.
    """
    import h5py

    name = str(name)
    split = _check_split(split, name)
    if n_clusters is not None:
        _check_n_clusters(n_clusters, name)
    p = _path(path, name)
    layout = "an HDF5 file with train/data, train/target, test/data, test/target"
    _require_file(p, name, layout, source)
    raw = p.read_bytes()
    splits = ("train", "test") if split == "all" else (split,)
    d = int(image_size) ** 2
    images, labels = [], []
    try:
        f = h5py.File(io.BytesIO(raw), "r")
    except Exception as e:  # noqa: BLE001
        raise DataError(f"dataset '{name}': cannot read {p} as HDF5 ({_one_line(e)}; expected {layout})") from None
    with f:
        for sp in splits:
            for key in (f"{sp}/data", f"{sp}/target"):
                if key not in f or not isinstance(f[key], h5py.Dataset):
                    raise DataError(
                        f"dataset '{name}': key {key!r} not found in {p} (expected {layout}; "
                        f"top level holds: {', '.join(f.keys()) or '(none)'})"
                    )
            x = np.asarray(f[f"{sp}/data"][()])
            y = np.asarray(f[f"{sp}/target"][()]).reshape(-1)
            if x.ndim == 3 and x.shape[1:] == (image_size, image_size):
                x = x.reshape(x.shape[0], d)
            if x.ndim != 2 or x.shape[1] != d:
                raise DataError(
                    f"dataset '{name}': {sp}/data in {p} has shape {x.shape}; expected (n, {d}) rows of {image_size}x{image_size} pixels"
                )
            if y.shape[0] != x.shape[0]:
                raise DataError(f"dataset '{name}': {sp}/target in {p} has {y.shape[0]} labels but {sp}/data has {x.shape[0]} rows")
            images.append(_float_to_uint8(x, name, f"{sp}/data", p))
            labels.append(y)
    x = np.concatenate(images).reshape(-1, 1, image_size, image_size)
    return _labelled(name, x, np.concatenate(labels), n_clusters, hashlib.sha256(raw).hexdigest(), str(p), split)


# --------------------------------------------------------------------------------------------
# Images as rows of a MATLAB matrix (COIL-20)
# --------------------------------------------------------------------------------------------
def load_mat_images(
    name: str = "coil20",
    path: str = "data/images/coil20.mat",
    image_key: str = "fea",
    label_key: str = "gnd",
    image_shape: list[int] = (1, 32, 32),  # type: ignore[assignment]
    order: Literal["F", "C"] = "F",
    n_clusters: int | None = None,
    source: str | None = None,
) -> ImageData:
    """Images stored one per row of a MATLAB v5 matrix (``fea`` (n, C*H*W), ``gnd`` (n, 1)).

    ``order: F`` means each row is MATLAB's column-major flattening of an ``H x W (x C)`` image
    (``fea(i,:) = reshape(img, 1, [])``), as in COIL-20's ``fea``; ``C`` means row-major
    ``(C, H, W)``. Floats in ``[0, 1]`` are scaled to ``0..255`` and rounded.
    """
    import scipy.io

    name = str(name)
    if n_clusters is not None:
        _check_n_clusters(n_clusters, name)
    if order not in ("F", "C"):
        raise DataError(f"dataset '{name}': unknown order {order!r} (choose from F, C)")
    try:
        c, h, w = (int(s) for s in image_shape)
    except (TypeError, ValueError):
        raise DataError(f"dataset '{name}': image_shape must be [C, H, W], got {image_shape!r}") from None
    p = _path(path, name)
    layout = f"a MATLAB v5 .mat file with {image_key!r} (n, {c * h * w}) and {label_key!r} (n, 1)"
    _require_file(p, name, layout, source)
    raw = p.read_bytes()
    try:
        mat = scipy.io.loadmat(io.BytesIO(raw))
    except NotImplementedError:
        raise DataError(f"dataset '{name}': {p} is a MATLAB v7.3 file; expected {layout}") from None
    except Exception as e:  # noqa: BLE001
        raise DataError(f"dataset '{name}': cannot read {p} ({_one_line(e)}; expected {layout})") from None
    keys = ", ".join(k for k in mat if not k.startswith("__")) or "(none)"
    for key in (image_key, label_key):
        if key not in mat:
            raise DataError(f"dataset '{name}': key {key!r} not found in {p} (keys present: {keys}; expected {layout})")
    x = np.asarray(mat[image_key])
    if x.dtype == object or x.ndim != 2 or x.shape[1] != c * h * w:
        raise DataError(
            f"dataset '{name}': {image_key!r} in {p} has shape {x.shape} ({x.dtype}); expected (n, {c * h * w}) rows of {c}x{h}x{w} images"
        )
    y = np.asarray(mat[label_key])
    if y.dtype == object or y.ndim > 2 or (y.ndim == 2 and 1 not in y.shape):
        raise DataError(f"dataset '{name}': labels {label_key!r} in {p} have shape {y.shape}; expected (n, 1)")
    y = y.reshape(-1)
    if y.shape[0] != x.shape[0]:
        raise DataError(f"dataset '{name}': {label_key!r} in {p} has {y.shape[0]} labels but {image_key!r} has {x.shape[0]} rows")
    x8 = _float_to_uint8(x, name, repr(image_key), p)
    if order == "F":  # MATLAB: H x W x C, column-major -> rows read as (C, W, H)
        x8 = x8.reshape(-1, c, w, h).transpose(0, 1, 3, 2)
    else:
        x8 = x8.reshape(-1, c, h, w)
    return _labelled(name, x8, y, n_clusters, hashlib.sha256(raw).hexdigest(), str(p), "all")


# --------------------------------------------------------------------------------------------
# scikit-learn digits
# --------------------------------------------------------------------------------------------
def load_digits(name: str = "digits", n_clusters: int | None = None) -> ImageData:
    """scikit-learn's 1797 8 x 8 digits (values 0..16, scaled to uint8 0..255), 10 classes."""
    from sklearn.datasets import load_digits as _sk_load_digits

    name = str(name)
    if n_clusters is not None:
        _check_n_clusters(n_clusters, name)
    bunch = _sk_load_digits()
    x = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)[:, None]
    y = np.asarray(bunch.target, dtype=np.int64)
    h = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    h.update(y.tobytes())
    return ImageData(
        name=name,
        images=torch.from_numpy(np.ascontiguousarray(x)),
        labels=torch.from_numpy(y),
        n_clusters=n_clusters,
        checksum=h.hexdigest(),
        source="sklearn.datasets.load_digits",
        class_names=[str(i) for i in range(10)],
        split="all",
    )


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------
_RESAMPLE = ("bilinear", "bicubic", "nearest", "box", "lanczos")


def default_cache_dir() -> Path:
    """Where decoded image folders are cached: ``$CLUSTERBENCH_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/clusterbench`` (``~/.cache/clusterbench``)."""
    if os.environ.get("CLUSTERBENCH_CACHE_DIR"):
        return Path(os.path.expanduser(os.environ["CLUSTERBENCH_CACHE_DIR"]))
    return Path(os.path.expanduser(os.environ.get("XDG_CACHE_HOME") or "~/.cache")) / "clusterbench"


def _folder_files(p: Path, name: str, recursive: bool) -> tuple[list[tuple[Path, int]], list[str] | None]:
    """The image files of ``p`` with their class index, and the class names (None: a flat folder
    of unlabelled images). Class folders win when there are any; a folder without sub-folders
    is read flat."""

    def images_in(folder: Path, deep: bool) -> list[Path]:
        found = folder.rglob("*") if deep else folder.iterdir()
        return sorted(f for f in found if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."))

    classes = sorted(d.name for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        flat = images_in(p, False)
        if not flat:
            raise DataError(
                f"dataset '{name}': no class folders and no images in {p} (expected {p}/<class>/<image files> "
                f"or {p}/<image files>; {'/'.join(IMAGE_EXTENSIONS)})"
            )
        return [(f, -1) for f in flat], None
    files: list[tuple[Path, int]] = []
    for label, cls in enumerate(classes):
        folder = p / cls
        chosen = images_in(folder, recursive)
        if not chosen:
            raise DataError(
                f"dataset '{name}': class folder {folder} holds no images "
                f"({'/'.join(IMAGE_EXTENSIONS)}{'' if recursive else '; set recursive: true for sub-folders'})"
            )
        files.extend((f, label) for f in chosen)
    return files, classes


def load_image_folder(  # noqa: C901 - argument checks in turn, each its own one-line error
    name: str | None,
    path: str | None,
    image_size: int | list[int] = 224,
    channels: Literal[1, 3] = 3,
    n_classes: int | None = None,
    recursive: bool = False,
    interpolation: Literal["bilinear", "bicubic", "nearest", "box", "lanczos"] = "bilinear",
    n_clusters: int | None = None,
    source: str | None = None,
    cache: bool = True,
    cache_dir: str | None = None,
) -> ImageData:
    """Images in ``<path>/<class>/<files>`` (classes in sorted folder-name order), or, when
    ``<path>`` has no sub-folders, the unlabelled images in ``<path>/<files>`` (a flat folder;
    ``n_clusters`` is then required).

    Every image is converted to grayscale (``channels: 1``) or RGB (``3``) and resized to
    ``image_size`` (an int for square, or ``[H, W]``) without cropping. ``recursive: true`` also
    takes images in sub-folders of a class folder (Tiny-ImageNet's ``<wnid>/images/``).
    ``n_classes``, when set, is checked against the number of class folders.

    ``cache: true`` keeps the decoded uint8 tensor in ``cache_dir`` (default
    :func:`default_cache_dir`), keyed by the sha256 of the files (names and bytes) and the
    decoding settings: a later run reads the files to hash them but decodes nothing. A cache
    that cannot be written is skipped with a warning. ``name`` null: the folder's name.
    """
    from PIL import Image, UnidentifiedImageError

    name = str(name or (Path(os.fspath(path)).name if path else "image_folder"))
    if n_clusters is not None:
        _check_n_clusters(n_clusters, name)
    if channels not in (1, 3):
        raise DataError(f"dataset '{name}': channels must be 1 or 3, got {channels!r}")
    if interpolation not in _RESAMPLE:
        raise DataError(f"dataset '{name}': unknown interpolation {interpolation!r} (choose from {', '.join(_RESAMPLE)})")
    if isinstance(image_size, bool):
        raise DataError(f"dataset '{name}': image_size must be an int or [H, W], got {image_size!r}")
    if isinstance(image_size, (int, np.integer)):
        out_h = out_w = int(image_size)
    else:
        try:
            out_h, out_w = (int(s) for s in image_size)
        except (TypeError, ValueError):
            raise DataError(f"dataset '{name}': image_size must be an int or [H, W], got {image_size!r}") from None
    if out_h < 1 or out_w < 1:
        raise DataError(f"dataset '{name}': image_size must be positive, got {image_size!r}")
    p = _path(path, name)
    if not p.is_dir():
        what = "not a folder" if p.exists() else "folder not found"
        raise DataError(
            f"dataset '{name}': {what}: {p} (expected {p}/<class>/<image files> or {p}/<image files>; {_where(source)}set paths.data_dir)"
        )
    files, classes = _folder_files(p, name, recursive)
    if n_classes is not None and len(classes or []) != int(n_classes):
        found = classes or []
        raise DataError(
            f"dataset '{name}': {len(found)} class folders in {p}, expected {n_classes} "
            f"(found: {', '.join(found[:5])}{', ...' if len(found) > 5 else ''})"
        )
    # the files' hash (names and bytes, in order): the dataset checksum and the cache key
    h = hashlib.sha256()
    for f, _ in files:
        h.update(f.relative_to(p).as_posix().encode() + b"\0")
        h.update(_read_image_bytes(f, name))
    checksum = h.hexdigest()
    labels = None if classes is None else np.array([label for _, label in files], dtype=np.int64)
    cache_file = None
    if cache:
        folder = Path(os.path.expanduser(cache_dir)) if cache_dir else default_cache_dir()
        cache_file = folder / "image_folders" / f"{checksum[:32]}_{out_h}x{out_w}x{channels}_{interpolation}.npy"
        if cache_file.is_file():
            try:
                images = np.load(cache_file, allow_pickle=False)
                if images.shape == (len(files), channels, out_h, out_w) and images.dtype == np.uint8:
                    return _folder_data(name, images, labels, n_clusters, checksum, p, classes)
            except (OSError, ValueError):
                pass  # a damaged cache file is decoded again and rewritten
    resample = getattr(Image.Resampling, interpolation.upper())
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(files), out_h, out_w, channels), dtype=np.uint8)
    for i, (f, _) in enumerate(files):
        try:
            with Image.open(io.BytesIO(_read_image_bytes(f, name))) as im:
                im = im.convert(mode)
                if im.size != (out_w, out_h):
                    im = im.resize((out_w, out_h), resample)
                arr = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DataError(f"dataset '{name}': cannot read image {f} ({_one_line(e)})") from None
        out[i] = arr.reshape(out_h, out_w, channels)
    images = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    if cache_file is not None:
        _write_cache(cache_file, images)
    return _folder_data(name, images, labels, n_clusters, checksum, p, classes)


def _read_image_bytes(f: Path, name: str) -> bytes:
    try:
        return f.read_bytes()
    except OSError as e:
        raise DataError(f"dataset '{name}': cannot read image {f} ({_one_line(e)})") from None


def _write_cache(cache_file: Path, images: np.ndarray) -> None:
    """The decoded images, written atomically with the mode the umask gives (a shared cache
    folder's group can read it, a private one's cannot)."""
    import sys

    from clusterbench.atomic import atomic_write_bytes

    try:
        atomic_write_bytes(cache_file, lambda handle: np.save(handle, images, allow_pickle=False))
    except OSError as e:
        print(f"warning: decoded images not cached in {cache_file.parent} ({_one_line(e)})", file=sys.stderr)


def _folder_data(
    name: str, images: np.ndarray, labels: np.ndarray | None, n_clusters: int | None, checksum: str, p: Path, classes: list[str] | None
) -> ImageData:
    return ImageData(
        name=name,
        images=torch.from_numpy(images),
        labels=None if labels is None else torch.from_numpy(labels),
        n_clusters=n_clusters,
        checksum=checksum,
        source=str(p.resolve()),  # absolute: results.json names the folder wherever report runs
        class_names=classes or [],
        split="all",
    )


# --------------------------------------------------------------------------------------------
# Shared by the torchvision layouts below
# --------------------------------------------------------------------------------------------
def _missing_error(name: str, folder: Path, missing: Sequence[str], archive: str, root: Path, source: str) -> DataError:
    """One line: which folder / files are absent, what to unpack where, and where to get it."""
    if folder.is_dir():
        what = f"missing in {folder}: {', '.join(missing)} ("
    else:
        what = f"folder not found: {folder} (expected {', '.join(missing)} in it; "
    return DataError(f"dataset '{name}': {what}unpack {archive} into {root}; {_where(source)}or set download: true; set paths.data_dir)")


def _fetch(
    name: str,
    variant: str,
    root: Path,
    folder: Path,
    files: Sequence[str],
    archive: str,
    source: str,
    download: bool,
    calls: Sequence[dict[str, Any]],
) -> None:
    """Make sure ``folder/<files>`` exist: download them with torchvision when asked, else a
    DataError naming the missing ones."""
    missing = [f for f in files if not (folder / f).is_file()]
    if missing and download:
        if not _torchvision_download(variant, root, name, calls, source):
            raise DataError(
                f"dataset '{name}': download: true needs torchvision (not installed); unpack {archive} "
                f"into {root} by hand (giving {folder}/{', '.join(missing)}), from {source}"
            )
        missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise _missing_error(name, folder, missing, archive, root, source)


def _read(p: Path, name: str, h: Any) -> bytes:
    try:
        data = p.read_bytes()
    except OSError as e:
        raise DataError(f"dataset '{name}': cannot read {p} ({_one_line(e)})") from None
    h.update(data)
    return data


# --------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python pickles)
# --------------------------------------------------------------------------------------------
CIFAR_SOURCE = "https://www.cs.toronto.edu/~kriz/cifar.html"
# torchvision's folder, batch files per split, meta file, label key, class-name key, archive
CIFAR_FILES: dict[str, dict[str, Any]] = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test": ("test_batch",),
        "meta": "batches.meta",
        "labels": "labels",
        "names": "label_names",
        "archive": "cifar-10-python.tar.gz",
        "torchvision": "CIFAR10",
    },
    "cifar100": {  # the clustering protocol, CIFAR-100(20): the 20 coarse superclasses
        "folder": "cifar-100-python",
        "train": ("train",),
        "test": ("test",),
        "meta": "meta",
        "labels": "coarse_labels",
        "names": "coarse_label_names",
        "archive": "cifar-100-python.tar.gz",
        "torchvision": "CIFAR100",
    },
}
# the only globals a CIFAR pickle needs (numpy arrays; _codecs.encode is how Python 3 writes
# bytes at protocol 2); anything else is refused, since unpickling can run arbitrary code
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler limited to plain containers and numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file")
        return super().find_class(module, name)


def _text(v: Any) -> str:
    return v.decode("latin1") if isinstance(v, bytes) else str(v)


def _read_pickle(p: Path, name: str, keys: Sequence[str], h: Any) -> dict[str, Any]:
    """A pickled dict with (at least) ``keys``; bytes keys (Python 2 pickles) become str."""
    data = _read(p, name, h)
    try:
        # encoding="bytes": the released files are Python 2 pickles (str -> bytes, as the
        # CIFAR page shows); latin1 would also work but would turn raw bytes into str
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DataError(f"dataset '{name}': cannot read {p} as a pickle ({_one_line(e)})") from None
    if not isinstance(obj, dict):
        raise DataError(f"dataset '{name}': {p} holds a pickled {type(obj).__name__}; expected a dict")
    d = {_text(k): v for k, v in obj.items()}
    for key in keys:
        if key not in d:
            raise DataError(f"dataset '{name}': key {key!r} not found in {p} (keys present: {', '.join(d) or '(none)'})")
    return d


def load_cifar(
    name: str = "cifar10",
    root: str = "data",
    variant: Literal["cifar10", "cifar100"] = "cifar10",
    split: Split = "all",
    download: bool = False,
    n_clusters: int | None = None,
    source: str | None = None,
) -> ImageData:
    """CIFAR-10 or CIFAR-100(20) from torchvision's layout, as uint8 ``(N, 3, 32, 32)``.

    ``cifar10``: ``<root>/cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta``.
    ``cifar100``: ``<root>/cifar-100-python/train``, ``test``, ``meta``; the labels are the 20
    coarse superclasses (``coarse_labels``), the usual clustering protocol. Each batch is a
    pickled dict whose ``data`` rows are 3072 bytes in (C, H, W) order. ``split: all`` is train
    (50000) then test (10000). The checksum covers the batch files in reading order, then the meta
    file. ``download: true`` fetches missing files with ``torchvision.datasets.CIFAR10/100``.
    """
    name = str(name)
    split = _check_split(split, name)
    if variant not in CIFAR_FILES:
        raise DataError(f"dataset '{name}': unknown variant {variant!r} (choose from {', '.join(CIFAR_FILES)})")
    if n_clusters is not None:
        _check_n_clusters(n_clusters, name)
    spec = CIFAR_FILES[variant]
    source = source or CIFAR_SOURCE
    root_p = _path(root, name)
    folder = root_p / spec["folder"]
    splits = ("train", "test") if split == "all" else (split,)
    batches = [f for sp in splits for f in spec[sp]]
    _fetch(
        name,
        spec["torchvision"],
        root_p,
        folder,
        [*batches, spec["meta"]],
        spec["archive"],
        source,
        download,
        ({"train": True}, {"train": False}),
    )
    h = hashlib.sha256()
    images, labels = [], []
    for f in batches:
        p = folder / f
        d = _read_pickle(p, name, ("data", spec["labels"]), h)
        x = np.asarray(d["data"])
        y = np.asarray(d[spec["labels"]]).reshape(-1)
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
            raise DataError(
                f"dataset '{name}': 'data' in {p} holds {x.dtype} of shape {x.shape}; expected uint8 (n, 3072) rows of 3x32x32 images"
            )
        if y.shape[0] != x.shape[0] or y.dtype.kind not in "iu":
            raise DataError(
                f"dataset '{name}': {spec['labels']!r} in {p} holds {y.shape[0]} {y.dtype} values; expected {x.shape[0]} integer labels"
            )
        images.append(x.reshape(-1, 3, 32, 32))  # rows are (C, H, W) already
        labels.append(y)
    meta_p = folder / spec["meta"]
    names = [_text(v) for v in _read_pickle(meta_p, name, (spec["names"],), h)[spec["names"]]]
    y = np.concatenate(labels).astype(np.int64)
    if y.min() < 0 or y.max() >= len(names):
        raise DataError(
            f"dataset '{name}': {spec['labels']!r} in {folder} has values in [{y.min()}, {y.max()}] but {meta_p} names {len(names)} classes"
        )
    return _labelled(name, np.concatenate(images), y, n_clusters, h.hexdigest(), str(folder), split, names=names)


# --------------------------------------------------------------------------------------------
# STL-10 (binary files)
# --------------------------------------------------------------------------------------------
STL10_SOURCE = (
    "https://cs.stanford.edu/~acoates/stl10/ (torchvision.datasets.STL10 downloads "
    "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz)"
)
# torchvision's file names, per split: (images, labels)
STL10_FILES = {
    "train": ("train_X.bin", "train_y.bin"),
    "test": ("test_X.bin", "test_y.bin"),
    "unlabeled": ("unlabeled_X.bin",),
}
_STL10_FOLDER = "stl10_binary"
_STL10_SHAPE = (3, 96, 96)
_STL10_BYTES = 3 * 96 * 96
_STL10_CHUNK = 2048  # images per read: the 2.8 GB unlabeled file is never held twice


def _read_stl_images(p: Path, name: str, h: Any) -> np.ndarray:
    """An STL-10 ``*_X.bin``: uint8 images, each channel stored column-major (Fortran order, as
    MATLAB wrote them), returned upright ``(n, 3, 96, 96)``."""
    try:
        size = p.stat().st_size
        if size == 0 or size % _STL10_BYTES:
            raise DataError(
                f"dataset '{name}': {p} holds {size} bytes; expected a positive multiple of {_STL10_BYTES} (uint8 3x96x96 images)"
            )
        n = size // _STL10_BYTES
        out = np.empty((n, *_STL10_SHAPE), dtype=np.uint8)
        with p.open("rb") as f:
            for start in range(0, n, _STL10_CHUNK):
                m = min(_STL10_CHUNK, n - start)
                data = f.read(m * _STL10_BYTES)
                if len(data) != m * _STL10_BYTES:
                    raise DataError(f"dataset '{name}': {p} ended early (changed while being read?)")
                h.update(data)
                # bytes per image read as (C, W, H): swap the last two axes for (C, H, W)
                out[start : start + m] = np.frombuffer(data, np.uint8).reshape(m, 3, 96, 96).transpose(0, 1, 3, 2)
    except OSError as e:
        raise DataError(f"dataset '{name}': cannot read {p} ({_one_line(e)})") from None
    return out


def load_stl10(
    name: str = "stl10",
    root: str = "data",
    split: Split = "all",
    unlabeled: bool = False,
    download: bool = False,
    n_clusters: int | None = None,
    source: str | None = None,
) -> ImageData:
    """STL-10 from torchvision's layout ``<root>/stl10_binary/``, as uint8 ``(N, 3, 96, 96)``.

    ``train_X.bin`` / ``test_X.bin`` hold the images (column-major per channel), ``train_y.bin`` /
    ``test_y.bin`` one uint8 label 1..10 per image (mapped to 0..9), ``class_names.txt`` (optional)
    one name per line. ``split: all`` is train (5000) then test (8000). ``unlabeled: true`` also
    reads ``unlabeled_X.bin`` (100000 images, 2.8 GB) into ``ImageData.unlabeled``. The checksum
    covers the files in reading order (split files, unlabeled_X.bin, class_names.txt).
    ``download: true`` fetches the archive with ``torchvision.datasets.STL10``.
    """
    name = str(name)
    split = _check_split(split, name)
    if n_clusters is not None:
        _check_n_clusters(n_clusters, name)
    source = source or STL10_SOURCE
    root_p = _path(root, name)
    folder = root_p / _STL10_FOLDER
    splits = ("train", "test") if split == "all" else (split,)
    files = [f for sp in splits for f in STL10_FILES[sp]]
    extra = list(STL10_FILES["unlabeled"]) if unlabeled else []
    # one STL10(split="train") call downloads and unpacks the whole archive (unlabeled included)
    _fetch(name, "STL10", root_p, folder, [*files, *extra], "stl10_binary.tar.gz", source, download, ({"split": "train"},))
    h = hashlib.sha256()
    images, labels = [], []
    for sp in splits:
        fx, fy = (folder / f for f in STL10_FILES[sp])
        x = _read_stl_images(fx, name, h)
        y = np.frombuffer(_read(fy, name, h), dtype=np.uint8)
        if y.shape[0] != x.shape[0]:
            raise DataError(f"dataset '{name}': {fy} holds {y.shape[0]} labels; expected {x.shape[0]} to match {fx}")
        if y.size and (y.min() < 1 or y.max() > 10):
            raise DataError(f"dataset '{name}': {fy} has labels in [{y.min()}, {y.max()}]; expected 1..10")
        images.append(x)
        labels.append(y.astype(np.int64) - 1)
    u = _read_stl_images(folder / STL10_FILES["unlabeled"][0], name, h) if unlabeled else None
    names_p = folder / "class_names.txt"
    names = None
    if names_p.is_file():  # optional, as in torchvision
        text = _read(names_p, name, h).decode("utf-8", errors="replace")
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if len(names) != 10:
            raise DataError(f"dataset '{name}': {names_p} names {len(names)} classes; expected 10, one per line")
    return _labelled(
        name,
        np.concatenate(images),
        np.concatenate(labels),
        n_clusters,
        h.hexdigest(),
        str(folder),
        split,
        names=names,
        unlabeled=u,
    )
