"""Checks a composed config against the signatures of its `_target_`s before anything is built.

Every node with a `_target_` is compared with the callable it names: a key the callable does
not accept, or a value whose type does not fit the parameter's annotation, is a ConfigError
that names the key (e.g. `model.alpha='abc': expected float`). This runs before any data are
loaded, so a typo costs a second, not a training run.
"""
from __future__ import annotations

import collections.abc
import inspect
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
    for key in ("max_epochs", "batch_size", "repeats_per_batch", "eval_every", "checkpoint_every", "eval_batch_size"):
        value = OmegaConf.select(cfg, f"trainer.{key}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"trainer.{key}={value!r}: expected a positive integer")
    from clusterbench.engine.loop import SELECTION_RULES

    if cfg.trainer.selection not in SELECTION_RULES:
        raise ConfigError(f"trainer.selection={cfg.trainer.selection!r}: expected one of {', '.join(SELECTION_RULES)}")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise ConfigError(f"seed={cfg.seed!r}: expected an integer")


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
            valid = ", ".join(k for k, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD or p.kind is p.KEYWORD_ONLY)
            raise ConfigError(f"{path}.{key}: unknown key for {target} (valid keys: {valid})")
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
