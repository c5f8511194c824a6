"""Papers' reported numbers (clusterbench/reference/<name>.yaml + .csv) and which runs they match."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from clusterbench.report.runs import Group, config_value

_MISSING = object()


class ReferenceFileError(ValueError):
    """A reference name that does not exist or a reference file that does not parse; one line."""


@dataclass(frozen=True)
class MatchRule:
    """Which groups of runs one paper row (table, method) is compared with."""

    table: str
    method: str
    models: tuple[str, ...]
    where: dict[str, Any] = field(default_factory=dict)
    where_not: dict[str, Any] = field(default_factory=dict)

    @property
    def specificity(self) -> int:
        return len(self.where) + len(self.where_not)

    def applies_to(self, model: str, config: dict[str, Any]) -> bool:
        if model not in self.models:
            return False
        for key, expected in self.where.items():
            actual = config_value(config, key, _MISSING)
            if actual is _MISSING or not _same_value(actual, expected):
                return False
        for key, excluded in self.where_not.items():
            # a key the config lacks is not equal to anything (e.g. an option added after the run)
            actual = config_value(config, key, _MISSING)
            if actual is not _MISSING and _same_value(actual, excluded):
                return False
        return True


@dataclass(frozen=True)
class PaperRow:
    """The paper's numbers for one group: values as fractions, keyed by clusterbench metric."""

    reference: "Reference"
    table: str
    method: str
    values: dict[str, float]
    notes: dict[str, str]

    @property
    def label(self) -> str:
        return f"Table {self.table}: {self.method}"


@dataclass
class Reference:
    name: str
    title: str
    protocol: str
    scale: float
    metrics: dict[str, str]  # paper metric name -> clusterbench metric key
    datasets: dict[str, str]  # clusterbench dataset name -> paper dataset name
    values: dict[tuple[str, str, str, str], tuple[float, str]]  # (table, paper dataset, method, metric key)
    rules: list[MatchRule]

    def paper_row(self, group: Group) -> PaperRow | None:
        """The paper row a group is compared with, or None when no rule applies or the dataset is not in the paper."""
        paper_dataset = self.datasets.get(group.dataset)
        if paper_dataset is None:
            return None
        names = getattr(group, "names", (group.model,))  # a row may stand for two names (amkm = kmeans)
        applicable = [rule for rule in self.rules if any(rule.applies_to(name, group.config) for name in names)]
        if not applicable:
            return None
        # most conditions first; max() keeps the first of equals, i.e. file order
        rule = max(applicable, key=lambda r: r.specificity)
        values, notes = {}, {}
        for metric in self.metrics.values():
            entry = self.values.get((rule.table, paper_dataset, rule.method, metric))
            if entry is not None:
                values[metric] = entry[0]
                if entry[1]:
                    notes[metric] = entry[1]
        if not values:
            return None
        return PaperRow(self, rule.table, rule.method, values, notes)


def _same_value(actual: Any, expected: Any) -> bool:
    """Config equality as a person means it: 1 == 1.0, lists element by element, no bool/int mix."""
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(actual, (list, tuple)) and len(actual) == len(expected) and all(_same_value(a, e) for a, e in zip(actual, expected))
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)
    return actual == expected


def available_references() -> list[str]:
    """Names of the bundled references (clusterbench/reference/<name>.yaml)."""
    folder = resources.files("clusterbench.reference")
    return sorted(item.name[: -len(".yaml")] for item in folder.iterdir() if item.name.endswith(".yaml"))


def load_reference(name_or_path: str) -> Reference:
    """A bundled reference by name (`sdcib_icml2025`) or any <name>.yaml path beside its .csv."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ReferenceFileError(f"no reference file {path}")
        read_sibling = lambda filename: (path.parent / filename).read_text()  # noqa: E731
        name, text = path.stem, path.read_text()
    else:
        folder = resources.files("clusterbench.reference")
        if not folder.joinpath(f"{name_or_path}.yaml").is_file():
            known = ", ".join(available_references()) or "none"
            raise ReferenceFileError(f"unknown reference {name_or_path!r} (bundled: {known}; or give a .yaml path)")
        read_sibling = lambda filename: folder.joinpath(filename).read_text()  # noqa: E731
        name, text = name_or_path, folder.joinpath(f"{name_or_path}.yaml").read_text()
    try:
        spec = yaml.safe_load(text)
        values_text = read_sibling(spec.get("values", f"{name}.csv"))
        return _parse(name, spec, values_text)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as err:
        if isinstance(err, ReferenceFileError):
            raise
        message = str(err).strip().splitlines()
        raise ReferenceFileError(f"reference {name}: {message[0] if message else type(err).__name__}") from None


def _parse(name: str, spec: dict[str, Any], values_text: str) -> Reference:
    metrics = {str(k): str(v) for k, v in spec["metrics"].items()}
    scale = float(spec.get("scale", 1))
    values: dict[tuple[str, str, str, str], tuple[float, str]] = {}
    for line, row in enumerate(csv.DictReader(io.StringIO(values_text)), start=2):
        if row["metric"] not in metrics:
            raise ReferenceFileError(f"reference {name}: line {line}: metric {row['metric']!r} is not in `metrics`")
        key = (str(row["table"]), row["dataset"], row["method"], metrics[row["metric"]])
        values[key] = (float(row["value"]) / scale, (row.get("note") or "").strip())
    rules = [
        MatchRule(
            table=str(rule["table"]),
            method=str(rule["method"]),
            models=tuple(str(m) for m in rule["models"]),
            where=dict(rule.get("where") or {}),
            where_not=dict(rule.get("where_not") or {}),
        )
        for rule in spec.get("matches") or []
    ]
    known_rows = {(table, method) for table, _, method, _ in values}
    for rule in rules:
        # a misspelt method in a rule would silently never show a paper value
        if (rule.table, rule.method) not in known_rows:
            raise ReferenceFileError(f"reference {name}: rule for Table {rule.table} {rule.method!r} names no row of the values file")
    return Reference(
        name=name,
        title=str(spec.get("title", name)),
        protocol=" ".join(str(spec.get("protocol", "")).split()),
        scale=scale,
        metrics=metrics,
        datasets={str(k): str(v) for k, v in (spec.get("datasets") or {}).items()},
        values=values,
        rules=rules,
    )


def resolve_references(choice: str) -> list[Reference]:
    """`auto`: every bundled reference (a row gets paper columns only where a rule matches); `none`: none."""
    if choice == "none":
        return []
    if choice == "auto":
        return [load_reference(name) for name in available_references()]
    return [load_reference(choice)]


def paper_row_for(group: Group, references: list[Reference]) -> PaperRow | None:
    for reference in references:
        row = reference.paper_row(group)
        if row is not None:
            return row
    return None
