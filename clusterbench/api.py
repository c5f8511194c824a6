"""`clusterbench.cluster(data, method=..., n_clusters=..., labels=None, **overrides)`: the Python API.

It runs the same thing as the command line (`python -m clusterbench.train model=<method> ...`):
the configs of configs/, the same checks before anything is loaded, the same engine, and one
run folder per call with everything the command line writes there (train.log included). The
data are written into the run folder (`input.npz`) and read back through `dataset=features`
(feature views) or `dataset=image_array` (images), so the folder is self-describing and
`report` reads it like any other; a path to a file or folder is read in place
(`dataset=features` / `image_folder`). The folder is named after the data (`<time>_<method>_
array_<8 hex>`, or the file's name). `clusterbench.Clusterer` (estimator.py) is the
scikit-learn estimator over the same functions, in memory unless given a folder.

Overrides are Hydra overrides given as keyword arguments, `__` standing for `.`
(`trainer__max_epochs=5` is `trainer.max_epochs=5`; `hardware="cpu"` picks an option of a
group), or a dict (`trainer={"max_epochs": 5}`), or `overrides=["trainer.max_epochs=5", ...]`.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from clusterbench.errors import ClusterbenchError, ConfigError

__all__ = ["cluster", "ClusterResult", "CollapseWarning"]

# groups picked on the command line with `+group=option` (not in train.yaml's defaults list)
_PLUS_GROUPS = ("experiment",)
# a config's choice of dataset for data given to the API (as arrays or a path): run folders are
# named after the data instead (array_<8 hex>, the file's name)
_OWN_DATA = ("features", "image_array", "image_folder")


class CollapseWarning(UserWarning):
    """The final clustering collapsed: fewer clusters than asked, or one holding most samples
    (results.json's `collapse`, engine/results.py)."""


@dataclass
class ClusterResult:
    """What `cluster` returns.

    labels: the cluster of every sample, ``(n,)`` int64 (the evaluation the run's selection rule
        kept; `trainer.selection`, label-free by default).
    probabilities: soft assignments ``(n, K)`` where the method gives them (deep methods with a
        cluster head), else None.
    metrics: ACC, NMI, ARI, purity and the collapse monitor when labels were given, else None.
    scores: label-free scores of the partition (silhouette, Calinski-Harabasz, cluster sizes)
        when no labels were given, else None.
    run_dir: the run folder (config, metrics.csv, results.json, predictions.npz, ...).
    results: results.json as a dict.
    """

    labels: np.ndarray
    probabilities: np.ndarray | None
    metrics: dict[str, Any] | None
    scores: dict[str, Any] | None
    run_dir: Path
    results: dict[str, Any] = field(repr=False)

    def __repr__(self) -> str:
        shown = self.metrics if self.metrics is not None else self.scores or {}
        keys = ("acc", "nmi", "ari") if self.metrics is not None else ("silhouette", "calinski_harabasz")
        numbers = ", ".join(f"{k}={shown[k]:.4f}" for k in keys if isinstance(shown.get(k), (int, float)))
        return f"ClusterResult(n={len(self.labels)}, clusters={len(np.unique(self.labels))}, {numbers}, run_dir='{self.run_dir}')"


def _value(value: Any) -> str:
    """A Python value as Hydra override syntax."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return repr(value.item() if isinstance(value, np.generic) else value)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        if re.fullmatch(r"[A-Za-z0-9_./\-:+~@]+", value):
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"override value {value!r}: a {type(value).__name__} cannot be written as a config value")


def _flatten(prefix: str, value: Any, out: list[str]) -> None:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out)
    else:
        plus = "+" if prefix in _PLUS_GROUPS else ""
        out.append(f"{plus}{prefix}={_value(value)}")


def hydra_overrides(overrides: Sequence[str] | Mapping[str, Any] | None = None, **kwargs: Any) -> list[str]:
    """Hydra override strings from `overrides` (strings as on the command line, or a dict of
    dotted keys) and keyword arguments (`__` for `.`; a dict value sets several keys)."""
    out: list[str] = []
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            _flatten(str(key), value, out)
    elif overrides is not None:
        if isinstance(overrides, str):
            overrides = [overrides]
        out.extend(str(o) for o in overrides)
    for key, value in kwargs.items():
        _flatten(key.replace("__", "."), value, out)
    return out


def _as_array(x: Any) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(x)


def _looks_like_images(x: np.ndarray) -> bool:
    # (n, H, W) grey (uint8 or float, e.g. scikit-learn's load_digits().images) or (n, C, H, W)
    return x.ndim in (3, 4)


def input_arrays(data: Any, labels: Any = None) -> tuple[dict[str, np.ndarray], bool]:
    """`data` (one array, a list of views, images) and optional `labels` as the arrays
    input.npz holds (`view_0`, `view_1`, ... or `images`; `labels`), and whether they are images.
    ConfigError (one line) for what cannot be clustered."""
    arrays: dict[str, np.ndarray] = {}
    if labels is not None:
        y = _as_array(labels).reshape(-1)
        if y.dtype == object:
            y = y.astype(str)
        arrays["labels"] = y
    if isinstance(data, (list, tuple)):
        views = [_as_array(v) for v in data]
        if not views:
            raise ConfigError("data: an empty list (give one array (n, d) or a list of views)")
        for i, v in enumerate(views):
            if v.ndim < 2 or v.dtype.kind not in "fiub":
                raise ConfigError(f"data[{i}]: a view must be a numeric array (n, d), got {v.dtype} of shape {v.shape}")
            arrays[f"view_{i}"] = v
        return arrays, False
    x = _as_array(data)
    if x.dtype.kind not in "fiub":
        raise ConfigError(f"data: expected a numeric array, got {x.dtype} of shape {x.shape}")
    if _looks_like_images(x):
        from clusterbench.data.own import as_uint8_images

        arrays["images"] = as_uint8_images(x, "array")
        return arrays, True
    if x.ndim != 2:
        raise ConfigError(
            f"data: expected (n, d) features, a list of views or images (n, C, H, W) / (n, H, W, C) / (n, H, W); got shape {x.shape}"
        )
    arrays["view_0"] = x
    return arrays, False


def _prepare_data(data: Any, labels: Any, folder: Path) -> tuple[list[str], Path | None, dict[str, np.ndarray] | None]:
    """Dataset overrides for `data`, and the arrays to write into `folder`/input.npz (None for a path)."""
    if isinstance(data, (str, os.PathLike)):
        p = Path(os.path.expanduser(os.fspath(data))).resolve()
        if not p.exists():
            raise ConfigError(f"data={os.fspath(data)!r}: no such file or folder")
        if labels is not None and not isinstance(labels, (str, os.PathLike)):
            raise ConfigError("labels: with data given as a path, give labels as a path too (or keep them in the file)")
        if p.is_dir():
            if labels is not None:
                raise ConfigError("labels: an image folder takes its labels from its class folders")
            return ["dataset=image_folder", f"dataset.path={_value(str(p))}"], None, None
        extra = [] if labels is None else [f"dataset.labels={_value(str(Path(labels).resolve()))}"]
        return ["dataset=features", f"dataset.path={_value(str(p))}", *extra], None, None
    arrays, images = input_arrays(data, labels)
    target = folder / "input.npz"
    option = "image_array" if images else "features"
    return [f"dataset={option}", f"dataset.path={_value(str(target))}", f"dataset.name={_data_name(arrays, images)}"], target, arrays


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of arrays (names, dtypes, shapes and bytes): the checksum of data held in memory."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _data_name(arrays: dict[str, np.ndarray], images: bool) -> str:
    """`array_<8 hex>` / `images_<8 hex>`: a name that is the same for the same data (so report
    groups the seeds of one data set in one row) and differs for different data."""
    return f"{'images' if images else 'array'}_{arrays_sha256(arrays)[:8]}"


def _fresh_folder(folder: Path) -> Path:
    """`folder`, or `folder_1`, `folder_2`, ... when calls in the same second would share it."""
    candidate, i = folder, 0
    while candidate.exists():
        i += 1
        candidate = folder.with_name(f"{folder.name}_{i}")
    return candidate


def compose_task(method: str, n_clusters: Any, data_overrides: list[str], user: list[str]):
    """The run's config as the command line composes it (`model=<method>`, the data's and the
    user's overrides), checked before anything is loaded: (task config, the groups' choices,
    the run folder Hydra would name). ConfigError (one line) for a wrong method, key or value."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    import clusterbench.train  # noqa: F401 - registers the config resolvers
    from clusterbench._configs import config_dir
    from clusterbench.config_check import check_config

    if not isinstance(method, str) or not method:
        raise ConfigError(f"method={method!r}: expected a model name (configs/model/)")
    if n_clusters is not None and (isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1):
        raise ConfigError(f"n_clusters={n_clusters!r}: expected a positive integer")
    configs = config_dir()
    models = sorted(p.stem for p in (Path(configs) / "model").glob("*.yaml"))
    if method not in models:
        raise ConfigError(f"method={method!r}: no such model (choose from {', '.join(models)})")
    extra = [] if n_clusters is None else [f"dataset.n_clusters={int(n_clusters)}"]
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=configs, version_base="1.3"):
            cfg = compose(config_name="train", overrides=[f"model={method}", *data_overrides, *extra, *user], return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        from clusterbench.cli_errors import translate

        line = translate(err, user)  # the command line's one line (nearest option or key), else Hydra's words
        raise ConfigError(line or f"overrides {' '.join(user) or '(none)'}: {' '.join(str(err).split())}") from None
    choices = dict(cfg.hydra.runtime.choices)
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} in the folder's name
    try:
        run_dir = Path(str(OmegaConf.select(cfg, "hydra.run.dir"))).resolve()
        task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # refers to no ${hydra:...}
    except OmegaConfBaseException as err:
        raise ConfigError(f"config cannot be resolved: {' '.join(str(err).split())}") from None
    finally:
        HydraConfig.instance().cfg = previous
    check_config(task)  # a wrong key or type fails here, before any folder is made
    return task, choices, run_dir


def named_after_data(run_dir: Path, choices: dict[str, Any], data_name: str) -> Path:
    """`<time>_<method>_features` -> `<time>_<method>_<data name>`: a run on the user's own data
    is named after them (the file, or array_<8 hex>), a folder named otherwise is kept."""
    choice = str(choices.get("dataset"))
    if choice in _OWN_DATA and run_dir.name.endswith("_" + choice):
        return run_dir.with_name(run_dir.name[: -len(choice)] + re.sub(r"[^\w.+-]", "_", data_name))
    return run_dir


def cluster(
    data: Any,
    method: str = "kmeans",
    n_clusters: int | None = None,
    labels: Any = None,
    *,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> ClusterResult:
    """Clusters `data` with `method` through clusterbench's engine; one run folder per call.

    Args:
        data: one array ``(n, d)``; a list of views (arrays ``(n, d_v)``); images as an array
            ``(n, C, H, W)``, ``(n, H, W, C)`` or ``(n, H, W)`` grey (uint8, or floats: [0, 1]
            scaled by 255, other non-negative floats by 255 / max, e.g. load_digits().images);
            numpy arrays, torch tensors or anything ``np.asarray`` takes; or a path to a file
            (``dataset=features``: .npy, .npz, .csv, .pt, .mat) or an image folder.
        method: a model config name (configs/model/: ``kmeans``, ``sdcib``, ``cc``, ...).
            The default, ``kmeans``, suits any feature array and needs no training schedule;
            the deep methods need the right kind of data (views, images) and their epochs.
        n_clusters: clusters to find; by default the number of classes in `labels` (required
            without labels).
        labels: optional ground truth ``(n,)`` (any values); with them the run reports ACC / NMI
            / ARI, without them label-free scores. Labels are never used for training or model
            selection unless a label-selected rule is asked for (and then flagged).
        overrides: Hydra overrides, as strings or a dict of dotted keys.
        **kwargs: more overrides, `__` for `.`: ``trainer__max_epochs=5``, ``hardware="cpu"``,
            ``seed=1``, ``paths__log_dir="runs"``, ``trainer={"batch_size": 64}``.

    Returns:
        ClusterResult with `.labels`, `.probabilities`, `.metrics`, `.scores`, `.run_dir`.
        A collapsed final clustering (results.json's `collapse`) also warns (CollapseWarning).

    Raises:
        clusterbench.errors.ConfigError / DataError: one line naming the key, file or value.
    """
    if labels is None and n_clusters is None and not isinstance(data, (str, os.PathLike)):
        raise ConfigError("n_clusters: required when no labels are given (the number of clusters to find)")
    user = hydra_overrides(overrides, **kwargs)
    # the data's file lies inside the run folder, which is known only once the config is
    # composed (its name holds the time): compose with a placeholder path, then fill it in
    data_overrides, _, _ = _prepare_data(data, labels, Path("input"))
    task, choices, run_dir = compose_task(method, n_clusters, data_overrides, user)
    data_overrides, target, arrays = _prepare_data(data, labels, run_dir)
    data_name = next((o.split("=", 1)[1] for o in data_overrides if o.startswith("dataset.name=")), None)
    run_dir = _fresh_folder(named_after_data(run_dir, choices, str(task.dataset.get("name") or data_name or Path(str(data)).stem)))
    if target is not None:
        target = run_dir / "input.npz"
        task.dataset.path = str(target)
    extra = [] if n_clusters is None else [f"dataset.n_clusters={int(n_clusters)}"]
    all_overrides = [f"model={method}", *data_overrides, *extra, *user]
    if arrays is not None:
        # the file inside this run folder and the data's name are in config.yaml; as
        # overrides they would make every call its own report row
        all_overrides = [o for o in all_overrides if not o.startswith(("dataset.path=", "dataset.name="))]
    results, _ = run_in_folder(task, run_dir, choices, all_overrides, arrays)
    warn_if_collapsed(results)
    return _result(run_dir, results)


def run_in_folder(task, run_dir: Path, choices: dict[str, Any], overrides: list[str], arrays: dict[str, np.ndarray] | None):
    """Writes what Hydra writes into a run folder (.hydra/, and the data as input.npz when
    given as arrays), then fits with the engine, the console's lines also in train.log. Returns
    (results.json as a dict, the engine's finished FitRun: its method, data and inputs)."""
    from clusterbench.engine.loop import FitRun
    from clusterbench.engine.sweep import remove_if_no_run, write_hydra_files

    run_dir.mkdir(parents=True, exist_ok=False)
    if arrays is not None:
        np.savez(run_dir / "input.npz", **arrays)
    # what Hydra writes into a run folder, so that report and resume= read it alike
    write_hydra_files(run_dir, config=task, overrides=overrides, choices=choices)
    meta = {"model": choices.get("model"), "dataset": choices.get("dataset"), "overrides": overrides}
    log_file = _train_log(run_dir)
    try:
        run = FitRun([task], [run_dir], [meta])
        outcome = run.fit()[0]
    except ClusterbenchError:
        remove_if_no_run(run_dir)  # a config or data error: no folder left behind
        raise
    finally:
        logging.getLogger().removeHandler(log_file)
        log_file.close()
    if isinstance(outcome, BaseException):  # pragma: no cover - a one-member fit raises instead
        raise outcome
    return outcome, run


def _train_log(run_dir: Path) -> logging.FileHandler:
    """run_dir/train.log as Hydra's job logging writes it (the engine's console lines go to the
    root logger's file handlers), attached to the root logger for this run."""
    handler = logging.FileHandler(run_dir / "train.log", delay=True)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def warn_if_collapsed(results: dict[str, Any]) -> None:
    collapse = results.get("collapse")
    if collapse:
        warnings.warn(f"{results.get('model')}: {collapse['message']}", CollapseWarning, stacklevel=3)


def _result(run_dir: Path, results: dict[str, Any]) -> ClusterResult:
    with np.load(run_dir / "predictions.npz", allow_pickle=False) as z:
        pred = np.asarray(z["y_pred"]).astype(np.int64)
        probabilities = np.asarray(z["probabilities"]) if "probabilities" in z.files else None
    metrics = dict(results["metrics"])
    labelled = "acc" in metrics
    return ClusterResult(
        labels=pred,
        probabilities=probabilities,
        metrics=metrics if labelled else None,
        scores=None if labelled else metrics,
        run_dir=run_dir,
        results=results,
    )
