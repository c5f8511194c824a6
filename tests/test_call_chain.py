"""A single run's path is short: from the command line to the training loop (FitRun.fit) in at
most four calls of the package's own (Hydra's frames aside), as engine/jobs.py's docstring says."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import pytest

import clusterbench
from clusterbench import train
from clusterbench.engine import loop

PACKAGE = str(Path(clusterbench.__file__).parent)


class _ReachedTheLoop(Exception):
    """Raised by FitRun.fit in this test: the stack is read, nothing is trained."""


def test_a_single_run_reaches_the_loop_in_four_calls(tmp_path, monkeypatch):
    chain = []

    def fit(self):
        chain.extend(f.name for f in traceback.extract_stack()[:-1] if f.filename.startswith(PACKAGE))
        raise _ReachedTheLoop

    monkeypatch.setattr(loop.FitRun, "fit", fit)
    monkeypatch.setattr(sys, "argv", ["train", "model=kmeans", "hardware=cpu", "trainer.progress=false", f"paths.log_dir={tmp_path}"])
    with pytest.raises(_ReachedTheLoop):
        train.cli()
    # command -> Hydra's errors -> compose (Hydra) -> check -> FitRun.fit (build, then the epochs)
    assert chain == ["cli", "run_hydra", "main", "run"]
