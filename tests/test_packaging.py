"""The package installs and runs outside the checkout: configs inside the wheel, console scripts,
`python -m clusterbench`, the Python API on the installed copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "configs", "docs", "clusterbench", "hydra_plugins")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_and_config_group_is_listed():
    """pyproject.toml lists the packages (the configs are mapped in, so they cannot be found):
    a new package or config group folder must be added there, or the wheel lacks it."""
    tool = _pyproject()["tool"]["setuptools"]
    listed = set(tool["packages"])
    assert tool["package-dir"] == {"clusterbench.configs": "configs", "clusterbench.docs": "docs"}
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for top in ("clusterbench", "hydra_plugins") for p in (ROOT / top).rglob("__init__.py")
    }
    on_disk |= {"clusterbench.configs", "clusterbench.docs"} | {
        f"clusterbench.configs.{d.name}" for d in (ROOT / "configs").iterdir() if d.is_dir()
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - on_disk == set(), "listed in pyproject.toml but not on disk"


def test_console_scripts_point_at_callables():
    import importlib

    for name, target in _pyproject()["project"]["scripts"].items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_python_m_clusterbench_lists_commands_and_options():
    out = subprocess.run([sys.executable, "-m", "clusterbench"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "clusterbench-train" in out and "clusterbench-report" in out
    assert "kmeans" in out and "features" in out and "image_folder" in out


def _copy_sources(dest: Path) -> None:
    """The files a clean checkout has (tracked, or new and not ignored): no build/, no caches."""
    try:
        listed = (
            subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", *SOURCES],
                cwd=ROOT,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .split("\0")
        )
    except (OSError, subprocess.CalledProcessError):
        listed = [
            str(p.relative_to(ROOT))
            for s in SOURCES
            for p in ([ROOT / s] if (ROOT / s).is_file() else (ROOT / s).rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        ]
    for rel in filter(None, listed):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    """Builds the wheel from a copy of the sources (no network, no build isolation), installs it
    without dependencies into a fresh venv that sees this environment's packages (torch is not
    downloaded), and runs k-means from a folder outside the checkout: console script, module and
    Python API."""
    src, dist, env, work = tmp_path / "src", tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    src.mkdir()
    work.mkdir()
    _copy_sources(src)
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(dist), str(src)], check=True)
    wheels = list(dist.glob("clusterbench-*.whl"))
    assert len(wheels) == 1
    import zipfile

    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "clusterbench/configs/train.yaml" in names and "clusterbench/configs/model/kmeans.yaml" in names
    assert "clusterbench/data/embedded/handwritten.npz" in names
    assert "clusterbench/docs/reliability.md" in names  # the docs ship: an installed copy has them

    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # this environment's packages (torch, hydra, ...) after the venv's own: a plain path line, so
    # the editable install's finder of the checkout is not loaded
    Path(site, "_clusterbench_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheels[0])], check=True)

    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environment.update(OMP_NUM_THREADS="1", CLUSTERBENCH_CACHE_DIR=str(tmp_path / "cache"))

    def run(*args: str) -> str:
        done = subprocess.run(list(args), cwd=work, env=environment, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout + done.stderr

    where = run(str(python), "-c", "import clusterbench, clusterbench._configs as c; print(clusterbench.__file__); print(c.config_dir())")
    assert str(env) in where and str(ROOT) not in where
    listing = run(str(python), "-m", "clusterbench")
    assert "clusterbench-train" in listing and f"docs: {site}/clusterbench/docs" in listing
    out = run(str(env / "bin" / "clusterbench-train"), "model=kmeans", "hardware=cpu")
    assert "kmeans on handwritten" in out and "ACC" in out
    runs = list((work / "outputs" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "results.json").exists()
    assert "suite" in run(str(env / "bin" / "clusterbench-bench"), "--help")
    assert "suite smoke: " in run(str(env / "bin" / "clusterbench-bench"), "smoke", "--dry-run")  # suites found in the wheel
    table = run(str(env / "bin" / "clusterbench-report"), str(work / "outputs"))
    assert "kmeans" in table
    api = run(
        str(python),
        "-c",
        (
            "import numpy as np, clusterbench\n"
            "x = np.r_[np.zeros((20, 2)), np.ones((20, 2)) * 5] + np.random.default_rng(0).normal(size=(40, 2))\n"
            "r = clusterbench.cluster(x, method='kmeans', labels=np.repeat([0, 1], 20), hardware='cpu')\n"
            "print('API', r.metrics['acc'], r.run_dir)\n"
        ),
    )
    assert "API 1.0" in api and str(work / "outputs") in api
