"""Tests for the CIFAR-10, CIFAR-100(20) and STL-10 loaders on tiny files written in torchvision's
on-disk layout (Python 2 style pickles, column-major STL binaries), their one-line errors, the
ImageData.unlabeled field and the three dataset configs."""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from clusterbench.data.images import CIFAR_FILES, STL10_FILES, ImageData, load_cifar, load_stl10
from clusterbench.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs" / "dataset"
RNG = np.random.default_rng(0)
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
STL10_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes as Python 2 str opcodes (SHORT_BINSTRING / BINSTRING), as in the released
    CIFAR files, instead of Python 3's ``_codecs.encode`` calls."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _dump(obj, path: Path, py2: bool = True) -> None:
    if not py2:  # a pickle written by Python 3 (str keys, current protocol)
        path.write_bytes(pickle.dumps({k.decode(): v for k, v in obj.items()}))
        return
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # the released files name numpy 1's module for the array constructor
    path.write_bytes(buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))


def _cifar_rows(n: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _write_cifar10(root: Path, n_per_batch: int = 3, n_test: int = 4, py2: bool = True):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for i, f in enumerate([*CIFAR_FILES["cifar10"]["train"], "test_batch"]):
        n = n_test if f == "test_batch" else n_per_batch
        x = _cifar_rows(n)
        y = [(3 * i + j) % 10 for j in range(n)]
        batches[f] = (x, y)
        _dump({b"batch_label": f.encode(), b"labels": y, b"data": x, b"filenames": [b"img%d.png" % j for j in range(n)]}, folder / f, py2)
    _dump(
        {b"num_cases_per_batch": n_per_batch, b"label_names": [s.encode() for s in CIFAR10_NAMES], b"num_vis": 3072},
        folder / "batches.meta",
        py2,
    )
    return folder, batches


def _write_cifar100(root: Path, n_train: int = 6, n_test: int = 3):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = {}
    for f, n in (("train", n_train), ("test", n_test)):
        x = _cifar_rows(n)
        fine = RNG.integers(0, 100, size=n).tolist()
        coarse = [(k * 7 + 3) % 20 for k in range(n)] if f == "train" else [19, 0, 5][:n]
        out[f] = (x, fine, coarse)
        _dump(
            {
                b"filenames": [b"f%d" % j for j in range(n)],
                b"batch_label": f.encode(),
                b"fine_labels": fine,
                b"coarse_labels": coarse,
                b"data": x,
            },
            folder / f,
        )
    _dump(
        {b"fine_label_names": [b"fine%02d" % k for k in range(100)], b"coarse_label_names": [b"super%02d" % k for k in range(20)]},
        folder / "meta",
    )
    return folder, out


def _stl_bin(images_chw: np.ndarray) -> bytes:
    """Images (n, 3, 96, 96) as STL-10 stores them: each channel column-major."""
    return np.ascontiguousarray(images_chw.transpose(0, 1, 3, 2)).tobytes()


def _write_stl10(root: Path, n_train: int = 3, n_test: int = 2, n_unlabeled: int = 2, names: bool = True):
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = RNG.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)
        y = np.array([(k * 3) % 10 + 1 for k in range(n)], dtype=np.uint8) if split == "train" else np.array([10, 1][:n], np.uint8)
        fx, fy = STL10_FILES[split]
        (folder / fx).write_bytes(_stl_bin(x))
        (folder / fy).write_bytes(y.tobytes())
        out[split] = (x, y)
    u = RNG.integers(0, 256, size=(n_unlabeled, 3, 96, 96), dtype=np.uint8)
    (folder / "unlabeled_X.bin").write_bytes(_stl_bin(u))
    out["unlabeled"] = u
    if names:
        (folder / "class_names.txt").write_text("\n".join(STL10_NAMES) + "\n")
    return folder, out


def _compose(stem: str, data_dir: Path):
    cfg = OmegaConf.create({"paths": {"data_dir": str(data_dir)}, "dataset": OmegaConf.load(CONFIG_DIR / f"{stem}.yaml")})
    OmegaConf.resolve(cfg)
    return cfg.dataset


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("py2", [True, False])
def test_cifar10_layout_labels_and_join_order(tmp_path, py2):
    folder, batches = _write_cifar10(tmp_path, py2=py2)
    ds = load_cifar("cifar10", str(tmp_path), variant="cifar10")
    order = [*CIFAR_FILES["cifar10"]["train"], "test_batch"]
    assert ds.images.shape == (19, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == [y for f in order for y in batches[f][1]]  # train batches 1..5, then test
    x = np.concatenate([batches[f][0] for f in order])
    assert np.array_equal(ds.images.numpy(), x.reshape(-1, 3, 32, 32))
    # pixel placement: row byte c*1024 + y*32 + x is channel c, row y, column x
    row = batches["data_batch_2"][0][1]
    assert int(ds.images[4, 2, 5, 7]) == int(row[2 * 1024 + 5 * 32 + 7])
    assert int(ds.images[4, 0, 31, 0]) == int(row[31 * 32])
    assert ds.class_names == CIFAR10_NAMES and ds.n_classes == ds.n_clusters == 10
    assert ds.split == "all" and ds.source == str(folder) and ds.unlabeled is None


def test_cifar10_splits(tmp_path):
    _, batches = _write_cifar10(tmp_path)
    train = load_cifar("c", str(tmp_path), split="train")
    test = load_cifar("c", str(tmp_path), split="test", n_clusters=7)
    assert train.n_samples == 15 and train.split == "train"
    assert test.n_samples == 4 and test.n_clusters == 7
    assert np.array_equal(test.images.numpy().reshape(4, -1), batches["test_batch"][0])
    # a split with some classes absent: labels 0..C-1, names follow the stored indices
    assert test.labels.tolist() == [0, 1, 2, 3] and test.class_names == CIFAR10_NAMES[5:9]


def test_cifar_checksum(tmp_path):
    folder, batches = _write_cifar10(tmp_path)
    order = [*CIFAR_FILES["cifar10"]["train"], "test_batch", "batches.meta"]
    h = hashlib.sha256()
    for f in order:
        h.update((folder / f).read_bytes())
    ds = load_cifar("c", str(tmp_path))
    assert ds.checksum == h.hexdigest() == load_cifar("c", str(tmp_path)).checksum
    h = hashlib.sha256()
    for f in ("test_batch", "batches.meta"):
        h.update((folder / f).read_bytes())
    assert load_cifar("c", str(tmp_path), split="test").checksum == h.hexdigest()
    blob = bytearray((folder / "data_batch_3").read_bytes())
    blob[blob.find(batches["data_batch_3"][0].tobytes()) + 100] ^= 1  # one pixel
    (folder / "data_batch_3").write_bytes(bytes(blob))
    assert load_cifar("c", str(tmp_path)).checksum != ds.checksum


# --------------------------------------------------------------------------------------------
# CIFAR-100(20)
# --------------------------------------------------------------------------------------------
def test_cifar100_uses_coarse_superclasses(tmp_path):
    folder, data = _write_cifar100(tmp_path)
    ds = load_cifar("cifar100", str(tmp_path), variant="cifar100")
    assert ds.images.shape == (9, 3, 32, 32) and ds.source == str(folder)
    coarse = np.array(data["train"][2] + data["test"][2])
    values = np.unique(coarse)
    assert ds.labels.tolist() == np.searchsorted(values, coarse).tolist()  # coarse, not fine
    assert ds.class_names == [f"super{v:02d}" for v in values]
    assert np.array_equal(ds.images[6:].numpy().reshape(3, -1), data["test"][0])  # train then test
    test = load_cifar("cifar100", str(tmp_path), variant="cifar100", split="test")
    assert test.class_names == ["super00", "super05", "super19"] and test.labels.tolist() == [2, 0, 1]


def test_cifar100_full_superclass_set(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    n = 40
    fine = list(range(n))
    coarse = [k % 20 for k in range(n)]
    for f in ("train", "test"):
        _dump({b"data": _cifar_rows(n), b"fine_labels": fine, b"coarse_labels": coarse}, folder / f)
    _dump({b"fine_label_names": [b"x"] * 100, b"coarse_label_names": [b"s%d" % k for k in range(20)]}, folder / "meta")
    ds = load_cifar("cifar100", str(tmp_path), variant="cifar100")
    assert ds.n_classes == ds.n_clusters == 20 and int(ds.labels.max()) == 19
    assert torch.bincount(ds.labels).tolist() == [4] * 20


# --------------------------------------------------------------------------------------------
# CIFAR errors
# --------------------------------------------------------------------------------------------
def test_cifar_missing_files_one_line(tmp_path):
    with pytest.raises(DataError) as info:
        load_cifar("cifar10", str(tmp_path))
    msg = _one_line(info)
    assert "folder not found" in msg and str(tmp_path / "cifar-10-batches-py") in msg
    assert "cifar-10-python.tar.gz" in msg and CIFAR_URL in msg and "download: true" in msg
    folder, _ = _write_cifar10(tmp_path)
    (folder / "test_batch").unlink()
    assert load_cifar("c", str(tmp_path), split="train").n_samples == 15  # test file not needed
    with pytest.raises(DataError) as info:
        load_cifar("c", str(tmp_path))
    msg = _one_line(info)
    assert f"missing in {folder}: test_batch" in msg and "data_batch_1" not in msg and CIFAR_URL in msg
    with pytest.raises(DataError) as info:
        load_cifar("cifar100", str(tmp_path), variant="cifar100")
    assert str(tmp_path / "cifar-100-python") in _one_line(info)


def test_cifar_bad_contents(tmp_path):
    folder, _ = _write_cifar10(tmp_path)
    _dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, folder / "test_batch")
    with pytest.raises(DataError) as info:
        load_cifar("c", str(tmp_path), split="test")
    assert str(folder / "test_batch") in _one_line(info) and "(n, 3072)" in _one_line(info)
    _dump({b"data": _cifar_rows(2)}, folder / "test_batch")
    with pytest.raises(DataError) as info:
        load_cifar("c", str(tmp_path), split="test")
    assert "'labels'" in _one_line(info) and str(folder / "test_batch") in _one_line(info)
    _dump({b"data": _cifar_rows(2), b"labels": [0, 10]}, folder / "test_batch")
    with pytest.raises(DataError) as info:
        load_cifar("c", str(tmp_path), split="test")
    assert "[0, 10]" in _one_line(info) and "10 classes" in _one_line(info)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError) as info:
        load_cifar("c", str(tmp_path), split="test")
    assert "cannot read" in _one_line(info) and str(folder / "test_batch") in _one_line(info)
    with pytest.raises(DataError, match="unknown variant"):
        load_cifar("c", str(tmp_path), variant="cifar20")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="unknown split"):
        load_cifar("c", str(tmp_path), split="val")  # type: ignore[arg-type]


def test_cifar_refuses_pickled_code(tmp_path):
    folder, _ = _write_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": print, "labels": []}))
    with pytest.raises(DataError) as info:
        load_cifar("c", str(tmp_path), split="test")
    assert "builtins.print is not allowed" in _one_line(info)


def _fake_torchvision(monkeypatch, **classes):
    """A stand-in ``torchvision.datasets`` holding ``classes``: nothing real is imported (fast)
    and no network is touched."""
    tv, tvd = types.ModuleType("torchvision"), types.ModuleType("torchvision.datasets")
    tv.datasets = tvd  # type: ignore[attr-defined]
    for k, v in classes.items():
        setattr(tvd, k, v)
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", tvd)


def test_cifar_download_failure_is_one_line(tmp_path, monkeypatch):
    calls = []

    def offline(root, train=True, download=False, **kwargs):
        calls.append((root, train, download))
        raise RuntimeError("Error downloading cifar-10-python.tar.gz:\n<urlopen error [Errno -3] no network>")

    _fake_torchvision(monkeypatch, CIFAR10=offline)
    with pytest.raises(DataError) as info:
        load_cifar("cifar10", str(tmp_path), download=True)
    msg = _one_line(info)
    assert "could not download CIFAR10" in msg and str(tmp_path) in msg and "no network" in msg
    assert CIFAR_URL in msg and calls == [(str(tmp_path), True, True)]


def test_cifar_download_without_torchvision(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision...` fail
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(DataError) as info:
        load_cifar("cifar10", str(tmp_path), download=True)
    msg = _one_line(info)
    assert "needs torchvision" in msg and str(tmp_path / "cifar-10-batches-py") in msg and CIFAR_URL in msg


def test_cifar_download_calls_torchvision_only_when_missing(tmp_path, monkeypatch):
    calls = []

    def fake(root, train=True, download=False, **kwargs):
        calls.append(train)
        if not (Path(root) / "cifar-100-python").exists():
            _write_cifar100(Path(root))

    _fake_torchvision(monkeypatch, CIFAR100=fake)
    assert load_cifar("c", str(tmp_path), variant="cifar100", download=True).n_samples == 9
    assert calls == [True, False]
    assert load_cifar("c", str(tmp_path), variant="cifar100", download=True).n_samples == 9
    assert calls == [True, False]  # files present: no second download


# --------------------------------------------------------------------------------------------
# STL-10
# --------------------------------------------------------------------------------------------
def test_stl10_layout_transpose_and_join_order(tmp_path):
    folder, data = _write_stl10(tmp_path)
    ds = load_stl10("stl10", str(tmp_path))
    assert ds.images.shape == (5, 3, 96, 96) and ds.images.dtype == torch.uint8
    assert np.array_equal(ds.images[:3].numpy(), data["train"][0])  # train first, upright
    assert np.array_equal(ds.images[3:].numpy(), data["test"][0])
    # a known pixel: byte c*9216 + x*96 + y of an image (column-major) is (c, y, x)
    raw = (folder / "train_X.bin").read_bytes()
    assert int(ds.images[0, 1, 5, 70]) == raw[1 * 9216 + 70 * 96 + 5]
    stored = np.concatenate([data["train"][1], data["test"][1]]).astype(np.int64) - 1  # 1..10 -> 0..9
    values = np.unique(stored)
    assert ds.labels.tolist() == np.searchsorted(values, stored).tolist()
    assert ds.class_names == [STL10_NAMES[v] for v in values]
    assert ds.split == "all" and ds.source == str(folder) and ds.unlabeled is None


def test_stl10_single_pixel_lands_at_c_y_x(tmp_path):
    folder, _ = _write_stl10(tmp_path)
    blob = bytearray(2 * 27648)
    blob[27648 + 2 * 9216 + 70 * 96 + 5] = 200  # image 1, channel 2, column 70, row 5
    (folder / "test_X.bin").write_bytes(bytes(blob))
    ds = load_stl10("s", str(tmp_path), split="test")
    assert ds.images.nonzero().tolist() == [[1, 2, 5, 70]] and int(ds.images[1, 2, 5, 70]) == 200


def test_stl10_splits_labels_and_names(tmp_path):
    folder, data = _write_stl10(tmp_path, names=False)
    test = load_stl10("s", str(tmp_path), split="test")
    assert test.n_samples == 2 and test.labels.tolist() == [1, 0] and test.class_names == ["0", "9"]
    train = load_stl10("s", str(tmp_path), split="train", n_clusters=10)
    assert train.n_samples == 3 and train.n_clusters == 10
    assert np.array_equal(train.images.numpy(), data["train"][0])
    # ten images, one per class: labels 1..10 become 0..9
    (folder / "class_names.txt").write_text("\n".join(STL10_NAMES) + "\n")
    x = RNG.integers(0, 256, size=(10, 3, 96, 96), dtype=np.uint8)
    (folder / "train_X.bin").write_bytes(_stl_bin(x))
    (folder / "train_y.bin").write_bytes(np.arange(10, 0, -1, dtype=np.uint8).tobytes())
    ds = load_stl10("s", str(tmp_path), split="train")
    assert ds.labels.tolist() == list(range(9, -1, -1)) and ds.class_names == STL10_NAMES
    assert ds.n_classes == ds.n_clusters == 10


def test_stl10_unlabeled(tmp_path):
    folder, data = _write_stl10(tmp_path)
    ds = load_stl10("stl10", str(tmp_path), unlabeled=True)
    assert ds.n_samples == 5 and len(ds) == 5 and ds.labels.shape == (5,)  # not counted
    assert ds.unlabeled.shape == (2, 3, 96, 96) and ds.unlabeled.dtype == torch.uint8
    assert np.array_equal(ds.unlabeled.numpy(), data["unlabeled"])  # transposed too
    assert "unlabeled=2" in repr(ds) and "unlabeled" not in repr(load_stl10("s", str(tmp_path)))
    order = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin", "class_names.txt"]
    h = hashlib.sha256()
    for f in order:
        h.update((folder / f).read_bytes())
    assert ds.checksum == h.hexdigest()
    assert load_stl10("s", str(tmp_path), split="test", unlabeled=True).unlabeled.shape[0] == 2
    (folder / "unlabeled_X.bin").unlink()
    assert load_stl10("s", str(tmp_path)).unlabeled is None  # only needed when asked for
    with pytest.raises(DataError) as info:
        load_stl10("stl10", str(tmp_path), unlabeled=True)
    msg = _one_line(info)
    assert f"missing in {folder}: unlabeled_X.bin" in msg and "stanford.edu" in msg


def test_stl10_checksum(tmp_path):
    folder, _ = _write_stl10(tmp_path)
    ds = load_stl10("s", str(tmp_path))
    assert ds.checksum == load_stl10("s", str(tmp_path)).checksum and len(ds.checksum) == 64
    blob = bytearray((folder / "test_X.bin").read_bytes())
    blob[1234] ^= 0x80
    (folder / "test_X.bin").write_bytes(bytes(blob))
    assert load_stl10("s", str(tmp_path)).checksum != ds.checksum


def test_stl10_errors_one_line(tmp_path):
    with pytest.raises(DataError) as info:
        load_stl10("stl10", str(tmp_path))
    msg = _one_line(info)
    assert "folder not found" in msg and str(tmp_path / "stl10_binary") in msg
    assert "train_X.bin" in msg and "stl10_binary.tar.gz" in msg and "http" in msg
    folder, _ = _write_stl10(tmp_path)
    (folder / "test_y.bin").write_bytes(bytes([1, 2, 3]))
    with pytest.raises(DataError) as info:
        load_stl10("s", str(tmp_path), split="test")
    assert str(folder / "test_y.bin") in _one_line(info) and "3 labels" in _one_line(info)
    (folder / "test_y.bin").write_bytes(bytes([0, 11]))
    with pytest.raises(DataError) as info:
        load_stl10("s", str(tmp_path), split="test")
    assert "expected 1..10" in _one_line(info)
    (folder / "test_X.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(DataError) as info:
        load_stl10("s", str(tmp_path), split="test")
    assert str(folder / "test_X.bin") in _one_line(info) and "27648" in _one_line(info)


def test_stl10_download_failure_is_one_line(tmp_path, monkeypatch):
    def offline(root, split="train", download=False, **kwargs):
        raise OSError("no network")

    _fake_torchvision(monkeypatch, STL10=offline)
    with pytest.raises(DataError) as info:
        load_stl10("stl10", str(tmp_path), download=True)
    assert "could not download STL10" in _one_line(info) and "stanford.edu" in _one_line(info)


# --------------------------------------------------------------------------------------------
# ImageData.unlabeled
# --------------------------------------------------------------------------------------------
def test_imagedata_unlabeled_validation():
    x = torch.zeros(4, 3, 5, 6, dtype=torch.uint8)
    ds = ImageData("t", x, [0, 1, 0, 1], unlabeled=np.zeros((7, 3, 5, 6), np.uint8))
    assert isinstance(ds.unlabeled, torch.Tensor) and ds.unlabeled.shape == (7, 3, 5, 6)
    assert ds.n_samples == 4 and len(ds) == 4 and ds[3][2] == 3
    assert ImageData("t", x, [0, 1, 0, 1]).unlabeled is None
    for bad in (torch.zeros(7, 3, 6, 5, dtype=torch.uint8), torch.zeros(7, 3, 5, 6), torch.zeros(7, 90, dtype=torch.uint8)):
        with pytest.raises(DataError) as info:
            ImageData("t", x, [0, 1, 0, 1], unlabeled=bad)
        msg = _one_line(info)
        assert "dataset 't': unlabeled images" in msg and "(M, 3, 5, 6)" in msg and str(tuple(bad.shape)) in msg


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "stem,writer,n,shape,k",
    [
        ("cifar10", _write_cifar10, 19, (3, 32, 32), 10),
        ("cifar100", _write_cifar100, 9, (3, 32, 32), None),
        ("stl10", _write_stl10, 5, (3, 96, 96), None),
    ],
)
def test_configs_compose_and_load(tmp_path, stem, writer, n, shape, k):
    from clusterbench.engine.loop import build

    cfg = _compose(stem, tmp_path)
    assert cfg.name == stem and cfg.root == str(tmp_path) and cfg.download is False and cfg.split == "all"
    with pytest.raises(DataError) as info:
        build(cfg)
    assert str(tmp_path) in _one_line(info) and "http" in _one_line(info)
    writer(tmp_path)
    ds = build(cfg)
    assert isinstance(ds, ImageData) and ds.name == stem and ds.n_samples == n and ds.image_shape == shape
    if k is not None:
        assert ds.n_classes == k


def test_config_specifics():
    c100 = OmegaConf.load(CONFIG_DIR / "cifar100.yaml")
    assert c100.variant == "cifar100" and c100.name == "cifar100"
    assert "superclasses" in (CONFIG_DIR / "cifar100.yaml").read_text().lower()
    assert OmegaConf.load(CONFIG_DIR / "cifar10.yaml").variant == "cifar10"
    stl = OmegaConf.load(CONFIG_DIR / "stl10.yaml")
    assert stl.unlabeled is False and stl._target_.endswith("load_stl10")


def test_stl10_config_unlabeled_override(tmp_path):
    from hydra.utils import instantiate

    _write_stl10(tmp_path)
    cfg = _compose("stl10", tmp_path)
    cfg.unlabeled = True
    assert instantiate(cfg).unlabeled.shape == (2, 3, 96, 96)
