"""Where the Hydra configs are: `configs/` at the top of a checkout (also under an editable
install), or `clusterbench/configs/` inside an installed wheel (pyproject.toml maps the one to
the other when it builds the wheel)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def config_dir() -> str:
    """Absolute path of the folder holding train.yaml and the config groups."""
    for candidate in (_PACKAGE / "configs", _PACKAGE.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"clusterbench's configs were not found (looked for train.yaml in {_PACKAGE / 'configs'} "
        f"and {_PACKAGE.parent / 'configs'}); reinstall the package"
    )
