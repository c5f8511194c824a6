"""Tests for clusterbench.data.images: the IDX reader, the MNIST-family, USPS, .mat, digits and
image-folder loaders on small generated files, their one-line errors, the image dataset configs,
and the real files in the shared data folder (skipped when it is absent)."""

from __future__ import annotations

import gzip
import hashlib
import inspect
import os
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from omegaconf import OmegaConf
from PIL import Image

from clusterbench.data.images import (
    MNIST_FILES,
    ImageData,
    load_digits,
    load_image_folder,
    load_mat_images,
    load_mnist,
    load_usps,
    read_idx,
)
from clusterbench.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs" / "dataset"
SHARED_DATA = Path(os.environ.get("CLUSTERBENCH_SHARED_DATA") or ROOT.parent / "shared" / "data")
IMAGE_TARGET = "clusterbench.data.images."
# your own data (dataset=features | image_folder | image_array): no fixed name, file or source;
# tested in tests/test_own_data.py
OWN_DATA = ("features", "image_folder", "image_array")
IMAGE_CONFIGS = sorted(
    p.stem for p in CONFIG_DIR.glob("*.yaml") if OmegaConf.load(p)._target_.startswith(IMAGE_TARGET) and p.stem not in OWN_DATA
)
FOLDER_CONFIGS = [s for s in IMAGE_CONFIGS if OmegaConf.load(CONFIG_DIR / f"{s}.yaml")._target_.endswith("load_image_folder")]
RNG = np.random.default_rng(0)

# MNIST per-class counts (train + test), Fashion-MNIST has 7000 per class
MNIST_COUNTS = [6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958]


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


def _idx_bytes(arr: np.ndarray) -> bytes:
    codes = {
        np.dtype(np.uint8): 0x08,
        np.dtype(np.int8): 0x09,
        np.dtype(">i2"): 0x0B,
        np.dtype(">i4"): 0x0C,
        np.dtype(">f4"): 0x0D,
        np.dtype(">f8"): 0x0E,
    }
    dt = arr.dtype if arr.dtype.itemsize == 1 else arr.dtype.newbyteorder(">")
    head = bytes([0, 0, codes[dt], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(dt).tobytes()


def _write_mnist(root: Path, folder: str = "MNIST", n_train: int = 6, n_test: int = 4, gz: bool = False):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    data = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 3).astype(np.uint8)
        data[split] = (x, y)
        for stem, arr in zip(MNIST_FILES[split], (x, y)):
            blob = _idx_bytes(arr)
            if gz:
                (raw / f"{stem}.gz").write_bytes(gzip.compress(blob))
            else:
                (raw / stem).write_bytes(blob)
    return raw, data


def _compose(stem: str, data_dir: Path):
    cfg = OmegaConf.create({"paths": {"data_dir": str(data_dir)}, "dataset": OmegaConf.load(CONFIG_DIR / f"{stem}.yaml")})
    OmegaConf.resolve(cfg)
    return cfg.dataset


def _sha256sums() -> dict[str, str]:
    f = SHARED_DATA / "SHA256SUMS"
    if not f.is_file():
        return {}
    out = {}
    for line in f.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[1].lstrip("*").lstrip("./")] = parts[0]
    return out


# --------------------------------------------------------------------------------------------
# Container
# --------------------------------------------------------------------------------------------
def test_imagedata_fields_and_indexing():
    x = torch.zeros(5, 3, 4, 6, dtype=torch.uint8)
    ds = ImageData("t", x, np.array([0, 1, 1, 2, 2]), checksum="abc", source="here")
    assert (ds.n_samples, ds.n_classes, ds.n_clusters, ds.n_views) == (5, 3, 3, 1)
    assert ds.dims == [72] and ds.image_shape == (3, 4, 6) and len(ds) == 5
    img, label, i = ds[3]
    assert img.shape == (3, 4, 6) and img.dtype == torch.uint8 and int(label) == 2 and i == 3
    assert ds.labels.dtype == torch.int64 and ds.class_names == ["0", "1", "2"]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch[0].shape == (4, 3, 4, 6) and batch[2].tolist() == [0, 1, 2, 3]
    assert ImageData("t", x, [0] * 5, n_clusters=4).n_clusters == 4
    assert "n_samples=5" in repr(ds)


def test_imagedata_rejects_bad_input():
    with pytest.raises(DataError, match="uint8"):
        ImageData("t", torch.zeros(2, 1, 3, 3), [0, 1])
    with pytest.raises(DataError, match="uint8"):
        ImageData("t", torch.zeros(2, 9, dtype=torch.uint8), [0, 1])
    with pytest.raises(DataError, match="2 images but 3 labels"):
        ImageData("t", torch.zeros(2, 1, 3, 3, dtype=torch.uint8), [0, 1, 1])
    with pytest.raises(ConfigError, match="n_clusters"):
        ImageData("t", torch.zeros(2, 1, 3, 3, dtype=torch.uint8), [0, 1], n_clusters=0)


# --------------------------------------------------------------------------------------------
# IDX reader
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_round_trip(tmp_path, dtype):
    arr = (RNG.integers(-100, 100, size=(3, 4, 5)) if dtype != np.uint8 else RNG.integers(0, 256, size=(3, 4, 5))).astype(dtype)
    f = tmp_path / "x-idx3"
    f.write_bytes(_idx_bytes(arr))
    out = read_idx(f)
    assert out.shape == (3, 4, 5) and out.dtype == np.dtype(dtype) and np.array_equal(out, arr)
    g = tmp_path / "x-idx3.gz"
    g.write_bytes(gzip.compress(_idx_bytes(arr)))
    assert np.array_equal(read_idx(g), arr)


def test_read_idx_labels_vector(tmp_path):
    y = np.array([5, 0, 4, 1], dtype=np.uint8)
    f = tmp_path / "labels-idx1"
    f.write_bytes(_idx_bytes(y))
    assert read_idx(f).tolist() == [5, 0, 4, 1]


def test_read_idx_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError) as info:
        read_idx(bad)
    assert str(bad) in _one_line(info) and "not an IDX file" in _one_line(info)
    short = tmp_path / "short"
    short.write_bytes(_idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-5])
    with pytest.raises(DataError) as info:
        read_idx(short)
    assert "needs 18" in _one_line(info) and str(short) in _one_line(info)
    with pytest.raises(DataError, match="truncated"):
        (tmp_path / "h").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
        read_idx(tmp_path / "h")
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "absent")


# --------------------------------------------------------------------------------------------
# MNIST family
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_layout_and_splits(tmp_path, gz):
    raw, data = _write_mnist(tmp_path, gz=gz)
    ds = load_mnist("m", str(tmp_path))
    assert ds.images.shape == (10, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[:6, 0], torch.from_numpy(data["train"][0]))  # train first
    assert torch.equal(ds.images[6:, 0], torch.from_numpy(data["test"][0]))
    assert ds.labels.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    assert ds.n_classes == ds.n_clusters == 3 and ds.split == "all" and ds.source == str(raw)
    h = hashlib.sha256()
    for split in ("train", "test"):
        for stem in MNIST_FILES[split]:
            h.update(next(raw.glob(stem + "*")).read_bytes())
    assert ds.checksum == h.hexdigest()
    train = load_mnist("m", str(tmp_path), split="train")
    test = load_mnist("m", str(tmp_path), split="test", n_clusters=5)
    assert train.n_samples == 6 and test.n_samples == 4 and test.n_clusters == 5
    assert torch.equal(test.images[:, 0], torch.from_numpy(data["test"][0]))


def test_load_mnist_fashion_variant_folder(tmp_path):
    _write_mnist(tmp_path, folder="FashionMNIST")
    assert load_mnist("f", str(tmp_path), variant="FashionMNIST").n_samples == 10
    with pytest.raises(DataError) as info:
        load_mnist("f", str(tmp_path), variant="MNIST")
    assert str(tmp_path / "MNIST" / "raw") in _one_line(info)


def test_load_mnist_missing_files_one_line(tmp_path):
    raw, _ = _write_mnist(tmp_path)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    assert load_mnist("m", str(tmp_path), split="train").n_samples == 6  # test files not needed
    with pytest.raises(DataError) as info:
        load_mnist("m", str(tmp_path))
    msg = _one_line(info)
    assert str(raw) in msg and "t10k-labels-idx1-ubyte" in msg and "train-images" not in msg
    assert "download: true" in msg and "http" in msg


def test_load_mnist_download_without_torchvision(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name.startswith("torchvision"):
            raise ImportError("no torchvision")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    with pytest.raises(DataError) as info:
        load_mnist("m", str(tmp_path), download=True)
    msg = _one_line(info)
    assert "needs torchvision" in msg and str(tmp_path / "MNIST" / "raw") in msg
    assert "train-images-idx3-ubyte" in msg


def test_load_mnist_wrong_contents(tmp_path):
    raw, _ = _write_mnist(tmp_path)
    (raw / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(DataError) as info:
        load_mnist("m", str(tmp_path))
    assert "train-labels-idx1-ubyte" in _one_line(info) and "(6,)" in _one_line(info)
    (raw / "train-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((6, 784), np.uint8)))
    with pytest.raises(DataError) as info:
        load_mnist("m", str(tmp_path))
    assert "train-images-idx3-ubyte" in _one_line(info) and "(n, h, w)" in _one_line(info)
    with pytest.raises(DataError, match="unknown split"):
        load_mnist("m", str(tmp_path), split="val")  # type: ignore[arg-type]


@pytest.mark.parametrize("variant,folder,counts", [("MNIST", "MNIST", MNIST_COUNTS), ("FashionMNIST", "FashionMNIST", [7000] * 10)])
def test_real_mnist_family(variant, folder, counts):
    if not (SHARED_DATA / folder / "raw").is_dir():
        pytest.skip(f"{SHARED_DATA / folder / 'raw'} not present")
    ds = load_mnist(variant.lower(), str(SHARED_DATA), variant=variant)
    assert ds.images.shape == (70000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64 and ds.labels.min() == 0 and ds.labels.max() == 9
    assert torch.bincount(ds.labels).tolist() == counts
    assert ds.n_classes == ds.n_clusters == 10 and int(ds.images.max()) == 255
    assert load_mnist("m", str(SHARED_DATA), variant=variant, split="test").n_samples == 10000


# --------------------------------------------------------------------------------------------
# USPS
# --------------------------------------------------------------------------------------------
def _write_usps(path: Path, n_train=5, n_test=3):
    out = {}
    with h5py.File(path, "w") as f:
        for split, n in (("train", n_train), ("test", n_test)):
            q = RNG.integers(0, 256, size=(n, 256))
            x = q / 255.0
            y = np.arange(n) % 10
            f.create_dataset(f"{split}/data", data=x)
            f.create_dataset(f"{split}/target", data=y)
            out[split] = (q.astype(np.uint8).reshape(n, 1, 16, 16), y)
    return out


def test_load_usps(tmp_path):
    p = tmp_path / "usps.h5"
    data = _write_usps(p)
    ds = load_usps("usps", str(p))
    assert ds.images.shape == (8, 1, 16, 16) and ds.images.dtype == torch.uint8
    assert np.array_equal(ds.images[:5].numpy(), data["train"][0])  # row-major 16 x 16
    assert np.array_equal(ds.images[5:].numpy(), data["test"][0])
    assert ds.labels.tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert ds.checksum == hashlib.sha256(p.read_bytes()).hexdigest() and ds.source == str(p)
    assert load_usps("usps", str(p), split="test").n_samples == 3


def test_load_usps_errors(tmp_path):
    with pytest.raises(DataError) as info:
        load_usps("usps", str(tmp_path / "usps.h5"), source="https://example.org/usps")
    msg = _one_line(info)
    assert "file not found" in msg and str(tmp_path / "usps.h5") in msg and "example.org" in msg
    p = tmp_path / "nokey.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("train/data", data=np.zeros((2, 256)))
        f.create_dataset("train/target", data=np.zeros(2))
    assert load_usps("u", str(p), split="train").n_samples == 2
    with pytest.raises(DataError) as info:
        load_usps("u", str(p))
    assert "'test/data'" in _one_line(info) and str(p) in _one_line(info)
    p = tmp_path / "shape.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("train/data", data=np.zeros((2, 100)))
        f.create_dataset("train/target", data=np.zeros(2))
    with pytest.raises(DataError) as info:
        load_usps("u", str(p), split="train")
    assert "(2, 100)" in _one_line(info) and "(n, 256)" in _one_line(info)
    p = tmp_path / "range.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("train/data", data=np.full((2, 256), -3.0))
        f.create_dataset("train/target", data=np.zeros(2))
    with pytest.raises(DataError, match=r"expected \[0, 1\]"):
        load_usps("u", str(p), split="train")
    p = tmp_path / "not.h5"
    p.write_bytes(b"nope")
    with pytest.raises(DataError, match="cannot read"):
        load_usps("u", str(p))


# --------------------------------------------------------------------------------------------
# Images in a .mat matrix (COIL-20)
# --------------------------------------------------------------------------------------------
def test_load_mat_images_column_major(tmp_path):
    imgs = RNG.integers(0, 256, size=(6, 32, 32)).astype(np.uint8)
    fea = np.stack([im.ravel(order="F") for im in imgs]) / 255.0  # MATLAB reshape(img, 1, [])
    gnd = np.repeat([3, 1, 2], 2)[:, None]
    p = tmp_path / "coil.mat"
    scipy.io.savemat(p, {"fea": fea, "gnd": gnd})
    ds = load_mat_images("coil20", str(p))
    assert ds.images.shape == (6, 1, 32, 32) and np.array_equal(ds.images[:, 0].numpy(), imgs)
    assert ds.labels.tolist() == [2, 2, 0, 0, 1, 1] and ds.class_names == ["1", "2", "3"]
    c_order = load_mat_images("coil20", str(p), order="C")
    assert np.array_equal(c_order.images[:, 0].numpy(), imgs.transpose(0, 2, 1))
    # colour rows: MATLAB H x W x C flattened column-major
    rgb = RNG.integers(0, 256, size=(2, 4, 5, 3)).astype(np.uint8)  # (n, H, W, C)
    scipy.io.savemat(tmp_path / "rgb.mat", {"X": np.stack([im.ravel(order="F") for im in rgb]), "y": [[1], [2]]})
    ds = load_mat_images("rgb", str(tmp_path / "rgb.mat"), image_key="X", label_key="y", image_shape=[3, 4, 5])
    assert np.array_equal(ds.images.numpy(), rgb.transpose(0, 3, 1, 2))


def test_load_mat_images_errors(tmp_path):
    with pytest.raises(DataError) as info:
        load_mat_images("coil20", str(tmp_path / "coil20.mat"), source="https://github.com/x/y")
    assert "file not found" in _one_line(info) and "github.com/x/y" in _one_line(info)
    p = tmp_path / "c.mat"
    scipy.io.savemat(p, {"fea": np.zeros((4, 1000)), "gnd": np.zeros((4, 1))})
    with pytest.raises(DataError) as info:
        load_mat_images("coil20", str(p))
    assert "(4, 1000)" in _one_line(info) and "(n, 1024)" in _one_line(info) and str(p) in _one_line(info)
    with pytest.raises(DataError) as info:
        load_mat_images("coil20", str(p), label_key="Y")
    assert "'Y' not found" in _one_line(info) and "fea, gnd" in _one_line(info)
    scipy.io.savemat(p, {"fea": np.zeros((4, 1024)), "gnd": np.zeros((3, 1))})
    with pytest.raises(DataError, match="3 labels but 'fea' has 4 rows"):
        load_mat_images("coil20", str(p))


def test_real_coil20():
    p = SHARED_DATA / "images" / "coil20.mat"
    if not p.is_file():
        pytest.skip(f"{p} not present")
    ds = load_mat_images("coil20", str(p))
    assert ds.images.shape == (1440, 1, 32, 32) and ds.images.dtype == torch.uint8
    assert torch.bincount(ds.labels).tolist() == [72] * 20 and ds.n_clusters == 20
    fea = scipy.io.loadmat(p)["fea"]
    assert np.array_equal(ds.images[0, 0].numpy(), np.rint(fea[0] * 255).reshape(32, 32).T)
    expected = _sha256sums().get("images/coil20.mat")
    if expected:
        assert ds.checksum == expected


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------
def test_load_digits():
    ds = load_digits()
    assert ds.images.shape == (1797, 1, 8, 8) and ds.images.dtype == torch.uint8
    assert int(ds.images.max()) == 255 and int(ds.images.min()) == 0
    assert ds.n_classes == ds.n_clusters == 10 and ds.labels.dtype == torch.int64
    from sklearn.datasets import load_digits as sk

    assert ds.labels.tolist() == sk().target.tolist()
    assert int(ds.images[0, 0, 0, 2]) == round(sk().images[0, 0, 2] * 255 / 16)
    assert load_digits().checksum == ds.checksum


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------
def _write_folder(root: Path) -> dict[str, list[np.ndarray]]:
    sizes = {"cat": [(10, 12), (8, 8)], "ant": [(16, 16)], "dog": [(12, 10), (10, 10), (6, 9)]}
    out = {}
    for cls, shapes in sizes.items():
        (root / cls).mkdir(parents=True)
        out[cls] = []
        for j, (h, w) in enumerate(shapes):
            arr = RNG.integers(0, 256, size=(h, w, 3)).astype(np.uint8)
            Image.fromarray(arr).save(root / cls / f"img{j}.png")
            out[cls].append(arr)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    return out


def test_load_image_folder(tmp_path):
    root = tmp_path / "set"
    arrays = _write_folder(root)
    ds = load_image_folder("set", str(root), image_size=8, n_classes=3)
    assert ds.class_names == ["ant", "cat", "dog"]  # sorted
    assert ds.labels.tolist() == [0, 1, 1, 2, 2, 2]
    assert ds.images.shape == (6, 3, 8, 8) and ds.images.dtype == torch.uint8
    assert np.array_equal(ds.images[2].numpy().transpose(1, 2, 0), arrays["cat"][1])  # 8x8 kept as is
    assert ds.n_clusters == 3 and ds.source == str(root) and len(ds.checksum) == 64
    gray = load_image_folder("set", str(root), image_size=[5, 7], channels=1, interpolation="nearest")
    assert gray.images.shape == (6, 1, 5, 7)
    expected = np.asarray(Image.fromarray(arrays["ant"][0]).convert("L").resize((7, 5), Image.Resampling.NEAREST))
    assert np.array_equal(gray.images[0, 0].numpy(), expected)
    assert gray.checksum == ds.checksum  # the bytes read, not the resized pixels


def test_load_image_folder_recursive(tmp_path):
    root = tmp_path / "tiny"
    for cls in ("n02", "n01"):
        (root / cls / "images").mkdir(parents=True)
        Image.fromarray(np.full((4, 4, 3), 7, np.uint8)).save(root / cls / "images" / "a.JPEG")
        (root / cls / f"{cls}_boxes.txt").write_text("0 0 1 1")
    with pytest.raises(DataError) as info:
        load_image_folder("tiny", str(root), image_size=4)
    assert "holds no images" in _one_line(info) and "recursive: true" in _one_line(info)
    ds = load_image_folder("tiny", str(root), image_size=4, recursive=True)
    assert ds.class_names == ["n01", "n02"] and ds.images.shape == (2, 3, 4, 4)


def test_load_image_folder_errors(tmp_path):
    with pytest.raises(DataError) as info:
        load_image_folder("aid", str(tmp_path / "AID"), source="https://captain-whu.github.io/AID/")
    msg = _one_line(info)
    assert "folder not found" in msg and str(tmp_path / "AID") in msg and "captain-whu" in msg
    root = tmp_path / "set"
    _write_folder(root)
    with pytest.raises(DataError) as info:
        load_image_folder("set", str(root), n_classes=4)
    assert "3 class folders" in _one_line(info) and "expected 4" in _one_line(info)
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as info:
        load_image_folder("set", str(root), image_size=4)
    assert str(root / "cat" / "broken.png") in _one_line(info)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_image_folder("e", str(tmp_path / "empty"))


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------
def test_image_configs_exist():
    for stem in (
        "mnist",
        "fashion_mnist",
        "usps",
        "coil20",
        "digits",
        "imagenet10",
        "imagenet_dogs",
        "tiny_imagenet",
        "rsod",
        "uc_merced",
        "siri_whu",
        "aid",
        "d0_40",
        "chaoyang",
    ):
        assert stem in IMAGE_CONFIGS


@pytest.mark.parametrize("stem", IMAGE_CONFIGS)
def test_image_config_keys_match_signature(stem):
    from hydra.utils import get_method

    node = OmegaConf.load(CONFIG_DIR / f"{stem}.yaml")
    params = set(inspect.signature(get_method(node._target_)).parameters)
    assert set(node.keys()) - {"_target_"} == params
    assert node.name == stem and node.n_clusters is None
    if stem != "digits":
        assert "http" in node.source


@pytest.mark.parametrize("stem", [s for s in IMAGE_CONFIGS if s != "digits"])
def test_image_config_missing_data_is_one_line(stem, tmp_path):
    from clusterbench.engine.loop import build

    cfg = _compose(stem, tmp_path)
    with pytest.raises(DataError) as info:
        build(cfg)
    msg = _one_line(info)
    assert str(tmp_path) in msg and "http" in msg


def test_folder_configs_load_a_tiny_folder(tmp_path):
    """Every image-folder config reads its documented layout (one image per class)."""
    from hydra.utils import instantiate

    for stem in FOLDER_CONFIGS:
        cfg = _compose(stem, tmp_path)
        root = Path(cfg.path)
        for k in range(cfg.n_classes):
            sub = root / f"c{k:03d}" / ("images" if cfg.recursive else "")
            sub.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((5, 6, 3), k % 256, np.uint8)).save(sub / "x.jpg")
        cfg.image_size = 4
        ds = instantiate(cfg)
        assert ds.n_classes == ds.n_clusters == cfg.n_classes and ds.images.shape[1:] == (3, 4, 4), stem


def test_digits_config_instantiates():
    from hydra.utils import instantiate

    ds = instantiate(_compose("digits", Path("/nonexistent")))
    assert ds.n_samples == 1797 and ds.name == "digits"


@pytest.mark.parametrize(
    "stem,n,shape", [("mnist", 70000, (1, 28, 28)), ("fashion_mnist", 70000, (1, 28, 28)), ("coil20", 1440, (1, 32, 32))]
)
def test_configs_against_shared_data(stem, n, shape):
    from hydra.utils import instantiate

    cfg = _compose(stem, SHARED_DATA)
    where = Path(cfg.path) if "path" in cfg else Path(cfg.root) / cfg.variant / "raw"
    if not where.exists():
        pytest.skip(f"{where} not present")
    ds = instantiate(cfg)
    assert ds.n_samples == n and ds.image_shape == shape and ds.name == stem


def test_feature_methods_read_an_image_set_as_flattened_pixels(tmp_path):
    """`model=amkm dataset=digits`: k-means on raw pixels through the same runner."""
    from conftest import compose_config

    from clusterbench.train import run

    results = run(compose_config(["model=amkm", "dataset=digits", "trainer.progress=false", "hardware=cpu"]), tmp_path)
    assert results["dataset"]["n_samples"] == 1797 and results["dataset"]["dims"] == [64]
    x = np.load(tmp_path / "predictions.npz")
    assert x["y_pred"].shape == (1797,) and 0.5 < results["metrics"]["acc"] <= 1.0
    # the view is the uint8 pixels / 255 (digits' 0..16 scaled to 0..255 on load)
    from clusterbench.data.images import load_digits as load_digits_set

    view = load_digits_set(name="digits").views[0]
    assert view.shape == (1797, 64) and view.dtype == torch.float32 and 0.0 <= view.min() and view.max() <= 1.0
