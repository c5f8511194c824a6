"""`clusterbench.cluster(data, method=..., n_clusters=..., labels=None, **overrides)`: the Python API.

It runs the same thing as the command line (`python -m clusterbench.train model=<method> ...`):
the configs of configs/, the same checks before anything is loaded, the same engine, and one
run folder per call with everything the command line writes there. The data are written into
the run folder (`input.npz`) and read back through `dataset=features` (feature views) or
`dataset=image_array` (images), so the folder is self-describing and `report` reads it like
any other; a path to a file or folder is read in place (`dataset=features` / `image_folder`).

Overrides are Hydra overrides given as keyword arguments, `__` standing for `.`
(`trainer__max_epochs=5` is `trainer.max_epochs=5`; `hardware="cpu"` picks an option of a
group), or a dict (`trainer={"max_epochs": 5}`), or `overrides=["trainer.max_epochs=5", ...]`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from clusterbench.errors import ClusterbenchError, ConfigError

__all__ = ["cluster", "ClusterResult"]

# groups picked on the command line with `+group=option` (not in train.yaml's defaults list)
_PLUS_GROUPS = ("experiment",)


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
    return x.ndim == 4 or (x.ndim == 3 and x.dtype == np.uint8)


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
    arrays: dict[str, np.ndarray] = {}
    if labels is not None:
        y = _as_array(labels).reshape(-1)
        if y.dtype == object:
            y = y.astype(str)
        arrays["labels"] = y
    target = folder / "input.npz"
    if isinstance(data, (list, tuple)):
        views = [_as_array(v) for v in data]
        if not views:
            raise ConfigError("data: an empty list (give one array (n, d) or a list of views)")
        for i, v in enumerate(views):
            if v.ndim < 2 or v.dtype.kind not in "fiub":
                raise ConfigError(f"data[{i}]: a view must be a numeric array (n, d), got {v.dtype} of shape {v.shape}")
            arrays[f"view_{i}"] = v
        return ["dataset=features", f"dataset.path={_value(str(target))}", f"dataset.name={_data_name(arrays, False)}"], target, arrays
    x = _as_array(data)
    if x.dtype.kind not in "fiub":
        raise ConfigError(f"data: expected a numeric array, got {x.dtype} of shape {x.shape}")
    if _looks_like_images(x):
        from clusterbench.data.own import as_uint8_images

        arrays["images"] = as_uint8_images(x, "array")
        return ["dataset=image_array", f"dataset.path={_value(str(target))}", f"dataset.name={_data_name(arrays, True)}"], target, arrays
    if x.ndim != 2:
        raise ConfigError(f"data: expected (n, d) features, a list of views or images (n, C, H, W) / (n, H, W, C); got shape {x.shape}")
    arrays["view_0"] = x
    return ["dataset=features", f"dataset.path={_value(str(target))}", f"dataset.name={_data_name(arrays, False)}"], target, arrays


def _data_name(arrays: dict[str, np.ndarray], images: bool) -> str:
    """`array_<8 hex>` / `images_<8 hex>`: a name that is the same for the same data (so report
    groups the seeds of one data set in one row) and differs for different data."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return f"{'images' if images else 'array'}_{h.hexdigest()[:8]}"


def _fresh_folder(folder: Path) -> Path:
    """`folder`, or `folder_1`, `folder_2`, ... when calls in the same second would share it."""
    candidate, i = folder, 0
    while candidate.exists():
        i += 1
        candidate = folder.with_name(f"{folder.name}_{i}")
    return candidate


def cluster(
    data: Any,
    method: str = "sdcib",
    n_clusters: int | None = None,
    labels: Any = None,
    *,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> ClusterResult:
    """Clusters `data` with `method` through clusterbench's engine; one run folder per call.

    Args:
        data: one array ``(n, d)``; a list of views (arrays ``(n, d_v)``); images as an array
            ``(n, C, H, W)`` or uint8 ``(n, H, W, C)`` (or ``(n, H, W)`` grey; floats in [0, 1]);
            numpy arrays, torch tensors or anything ``np.asarray`` takes; or a path to a file
            (``dataset=features``: .npy, .npz, .csv, .pt, .mat) or an image folder.
        method: a model config name (configs/model/: ``kmeans``, ``sdcib``, ``cc``, ...).
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

    Raises:
        clusterbench.errors.ConfigError / DataError: one line naming the key, file or value.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    import clusterbench.train as train  # registers the config resolvers
    from clusterbench._configs import config_dir

    if not isinstance(method, str) or not method:
        raise ConfigError(f"method={method!r}: expected a model name (configs/model/)")
    if n_clusters is not None and (isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1):
        raise ConfigError(f"n_clusters={n_clusters!r}: expected a positive integer")
    if labels is None and n_clusters is None and not isinstance(data, (str, os.PathLike)):
        raise ConfigError("n_clusters: required when no labels are given (the number of clusters to find)")
    user = hydra_overrides(overrides, **kwargs)
    configs = config_dir()
    models = sorted(p.stem for p in (Path(configs) / "model").glob("*.yaml"))
    if method not in models:
        raise ConfigError(f"method={method!r}: no such model (choose from {', '.join(models)})")

    # the data's file lies inside the run folder, which is known only once the config is
    # composed (its name holds the time): compose with a placeholder path, then fill it in
    data_overrides, _, _ = _prepare_data(data, labels, Path("input"))
    extra = [] if n_clusters is None else [f"dataset.n_clusters={int(n_clusters)}"]
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=configs, version_base="1.3"):
            cfg = compose(config_name="train", overrides=[f"model={method}", *data_overrides, *extra, *user], return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"overrides {' '.join(user) or '(none)'}: {' '.join(str(err).split())}") from None
    choices = dict(cfg.hydra.runtime.choices)
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        run_dir = _fresh_folder(Path(str(OmegaConf.select(cfg, "hydra.run.dir"))).resolve())
        task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        data_overrides, target, arrays = _prepare_data(data, labels, run_dir)
        if target is not None:
            with open_dict(task):
                task.dataset.path = str(target)
        all_overrides = [f"model={method}", *data_overrides, *extra, *user]
        train.check_config(task)  # a wrong key or type fails here, before the folder is made
        run_dir.mkdir(parents=True, exist_ok=False)
        if arrays is not None:
            np.savez(target, **arrays)
        # what Hydra writes into a run folder, so that report and resume= read it alike
        hydra_dir = run_dir / ".hydra"
        hydra_dir.mkdir()
        (hydra_dir / "config.yaml").write_text(OmegaConf.to_yaml(task))
        if arrays is not None:
            # the file inside this run folder and the data's name are in config.yaml; as
            # overrides they would make every call its own report row
            all_overrides = [o for o in all_overrides if not o.startswith(("dataset.path=", "dataset.name="))]
        (hydra_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(all_overrides)))
        (hydra_dir / "hydra.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create({"hydra": {"runtime": {"choices": choices}}})))
        meta = {"model": method, "dataset": choices.get("dataset"), "overrides": all_overrides}
        try:
            results = train.run(task, run_dir, meta)
        except ClusterbenchError:
            _remove_if_empty(run_dir)  # a config or data error: no folder left behind
            raise
    finally:
        HydraConfig.instance().cfg = previous
    return _result(run_dir, results)


def _remove_if_empty(run_dir: Path) -> None:
    """Removes a run folder that holds nothing of a run (the config, the input, the lock, the log)."""
    import shutil

    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".hydra", "input.npz", ".lock", "train.log"}:
        shutil.rmtree(run_dir, ignore_errors=True)


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
