"""Checks a composed config against the signatures of its `_target_`s before anything is built.

Every node with a `_target_` is compared with the callable it names: a key the callable does
not accept, or a value whose type does not fit the parameter's annotation, is a ConfigError
that names the key (e.g. `model.alpha='abc': expected float`). This runs before any data are
loaded, so a typo costs a second, not a training run.
"""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import math
import types
import typing
from typing import Any, Literal, Union

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from clusterbench.errors import ConfigError, first_line

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
# groups whose `_target_` is built by the engine; other groups are plain settings
TARGET_GROUPS = ("dataset", "model", "loss", "backbone", "hardware", "logger", "trainer.optimizer")


def check_config(cfg: DictConfig) -> None:
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"config cannot be resolved: {first_line(err)}") from None
    for path in TARGET_GROUPS:
        node = OmegaConf.select(cfg, path)
        if isinstance(node, DictConfig) and "_target_" in node:
            check_node(node, path)
    for name, node in (OmegaConf.select(cfg, "trainer.optimizers") or {}).items():
        check_node(node, f"trainer.optimizers.{name}")
    check_trainer(cfg)
    threads = OmegaConf.select(cfg, "hardware.num_threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ConfigError(f"hardware.num_threads={threads!r}: expected null (all cores) or a positive integer")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise ConfigError(f"seed={cfg.seed!r}: expected an integer")
    if not isinstance(cfg.get("overwrite", False), bool):
        raise ConfigError(f"overwrite={cfg.overwrite!r}: expected true or false")
    check_ddp_contract(cfg)


# every key of configs/trainer/default.yaml: a misspelt or unknown trainer key is an error (the
# engine would silently ignore it)
TRAINER_KEYS = (
    "max_epochs",
    "batch_size",
    "drop_last",
    "repeats_per_batch",
    "eval_every",
    "eval_batch_size",
    "checkpoint_every",
    "checkpoint_interval_s",
    "checkpoint",
    "keep_checkpoints",
    "selection",
    "progress",
    "save_embedding",
    "optimizer",
    "optimizers",
    "scheduler",
    "grad_clip",
    "checkpoint_when_done",
    "profile",
)
CHECKPOINT_MODES = ("full", "weights", "none")
# what a finished run keeps (engine/checkpoint.py shrink_finished_checkpoints)
WHEN_DONE_MODES = ("extendable", *CHECKPOINT_MODES)
SCHEDULERS = ("none", "cosine")
SCHEDULER_KEYS = ("name", "warmup_epochs", "min_lr_ratio")


def _unknown(key: str, value, valid) -> ConfigError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], valid, n=1)
    hint = f"; did you mean {key.rsplit('.', 1)[0]}.{close[0]}?" if close else ""
    return ConfigError(f"{key}={value!r}: unknown key (valid keys: {', '.join(valid)}){hint}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_trainer(cfg: DictConfig) -> None:  # noqa: C901 - a flat list of independent key checks, one message each
    """The engine's own settings: known keys, positive counts, a usable learning rate."""
    trainer = cfg.trainer
    for key in trainer:
        if key not in TRAINER_KEYS:
            raise _unknown(f"trainer.{key}", OmegaConf.select(trainer, str(key)), TRAINER_KEYS)
    for key in ("max_epochs", "batch_size", "repeats_per_batch", "eval_every", "checkpoint_every", "eval_batch_size"):
        value = OmegaConf.select(cfg, f"trainer.{key}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"trainer.{key}={value!r}: expected a positive integer")
    interval = trainer.get("checkpoint_interval_s", 0)  # absent from configs saved before it existed
    if not _number(interval) or interval < 0:
        raise ConfigError(
            f"trainer.checkpoint_interval_s={interval!r}: expected a number of seconds >= 0 (0: every checkpoint_every epochs)"
        )
    for key in ("drop_last", "keep_checkpoints", "progress", "save_embedding"):
        value = trainer.get(key)
        if not isinstance(value, bool):
            raise ConfigError(f"trainer.{key}={value!r}: expected true or false")
    if not isinstance(trainer.get("profile", False), bool):  # absent from configs saved before it existed
        raise ConfigError(f"trainer.profile={trainer.profile!r}: expected true or false")
    from clusterbench.engine.results import SELECTION_RULES

    if trainer.selection not in SELECTION_RULES:
        raise ConfigError(f"trainer.selection={trainer.selection!r}: expected one of {', '.join(SELECTION_RULES)}")
    if trainer.get("checkpoint", "full") not in CHECKPOINT_MODES:
        raise ConfigError(f"trainer.checkpoint={trainer.checkpoint!r}: expected one of {', '.join(CHECKPOINT_MODES)}")
    if trainer.get("checkpoint_when_done", "full") not in WHEN_DONE_MODES:
        raise ConfigError(f"trainer.checkpoint_when_done={trainer.checkpoint_when_done!r}: expected one of {', '.join(WHEN_DONE_MODES)}")
    if cfg.get("resume") and trainer.get("checkpoint", "full") != "full":
        raise ConfigError(
            f"resume={cfg.resume}: the run was started with trainer.checkpoint={trainer.checkpoint}; resume needs trainer.checkpoint=full"
        )
    specs = {"trainer.optimizer": trainer.optimizer, **{f"trainer.optimizers.{k}": v for k, v in (trainer.get("optimizers") or {}).items()}}
    for path, spec in specs.items():
        if isinstance(spec, DictConfig) and "lr" in spec:
            lr = spec.lr
            if not _number(lr) or lr <= 0:
                raise ConfigError(f"{path}.lr={lr!r}: expected a positive finite number")
    clip = trainer.get("grad_clip")
    if clip is not None and (not _number(clip) or clip <= 0):
        raise ConfigError(f"trainer.grad_clip={clip!r}: expected null (no clipping) or a positive number")
    scheduler = trainer.get("scheduler")
    if scheduler is not None:
        if not isinstance(scheduler, DictConfig):
            raise ConfigError(f"trainer.scheduler={scheduler!r}: expected a mapping with name: {' | '.join(SCHEDULERS)}")
        for key in scheduler:
            if key not in SCHEDULER_KEYS:
                raise _unknown(f"trainer.scheduler.{key}", scheduler[key], SCHEDULER_KEYS)
        if scheduler.get("name", "none") not in SCHEDULERS:
            raise ConfigError(f"trainer.scheduler.name={scheduler.name!r}: expected one of {', '.join(SCHEDULERS)}")
        warmup = scheduler.get("warmup_epochs", 0)
        if not _number(warmup) or warmup < 0:
            raise ConfigError(f"trainer.scheduler.warmup_epochs={warmup!r}: expected a number >= 0")
        ratio = scheduler.get("min_lr_ratio", 0.0)
        if not _number(ratio) or not 0 <= ratio <= 1:
            raise ConfigError(f"trainer.scheduler.min_lr_ratio={ratio!r}: expected a number from 0 to 1")


def check_ddp_contract(cfg: DictConfig) -> None:
    """hardware=ddp only for methods whose losses see the global batch (ClusteringMethod's
    `global_batch_losses`): others would silently optimise each process's share."""
    if not OmegaConf.select(cfg, "hardware.distributed", default=False):
        return
    target = OmegaConf.select(cfg, "model._target_")
    try:
        method = get_object(target)
    except Exception:  # noqa: BLE001 - check_node has named an unimportable target already
        return
    if not getattr(method, "global_batch_losses", True):
        raise ConfigError(
            f"hardware=ddp: {target.rsplit('.', 1)[-1]} computes its losses on each process's share of the batch, "
            "not the global batch; train it on one process (hardware=gpu or cpu)"
        )


def check_node(node: DictConfig, path: str) -> None:
    target = node["_target_"]
    try:
        obj = get_object(target)
    except Exception as err:  # hydra wraps import errors in several types
        raise ConfigError(f"{path}._target_={target!r} cannot be imported: {first_line(err)}") from None
    func = obj.__init__ if inspect.isclass(obj) else obj
    try:
        signature = inspect.signature(obj)
        hints = typing.get_type_hints(func)
    except (TypeError, ValueError, NameError):
        return  # builtins or C callables: nothing to check against
    params = signature.parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for key in node:
        if key in _HYDRA_KEYS:
            continue
        if key not in params:
            if takes_kwargs:
                continue
            names = [k for k, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD or p.kind is p.KEYWORD_ONLY]
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {path}.{close[0]}?" if close else ""
            raise ConfigError(f"{path}.{key}: unknown key for {target} (valid keys: {', '.join(names)}){hint}")
        if key in hints:
            value = OmegaConf.to_container(node, resolve=True)[key]
            if not _fits(value, hints[key]):
                raise ConfigError(f"{path}.{key}={value!r}: expected {_describe(hints[key])}")


def _fits(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if annotation is type(None):
        return value is None
    if origin is Literal:
        return value in args
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple, ListConfig)):
            return False
        if args and args[-1] is not Ellipsis and origin is not tuple:
            return all(_fits(item, args[0]) for item in value)
        return True
    if origin is dict or annotation is dict:
        return isinstance(value, (dict, DictConfig))
    return True  # types we do not check (tensors, callables, ...)


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))
