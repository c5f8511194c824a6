from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = str(ROOT / "configs")

# small and fast: 2 layers of 32/16 units, large batches, no progress bar
RUNNER = [
    "trainer.batch_size=200",
    "trainer.max_epochs=2",
    "trainer.checkpoint_every=1",
    "trainer.checkpoint_interval_s=0",  # a checkpoint every epoch, however short (tests of resume)
    "trainer.progress=false",
    "hardware=cpu",
]
# SDCIB's step compares every pair of views: on two of handwritten's six (fou 76, kar 64) a tiny
# run trains about 4x faster than on all six, and the engine's behaviour under test is the same
TINY_SDCIB = ["backbone.hidden_dims=[32,16]", "model.critic_hidden_dims=[16]", "+dataset.views=[0,2]"]
TINY = [*TINY_SDCIB, *RUNNER]


@pytest.fixture(autouse=True)
def _drop_log_handlers_on_closed_streams():
    """A run in an earlier test of this process (Hydra's job logging) can leave a handler on that
    test's captured stderr, closed since: its next record prints "--- Logging error ---" into
    this test's stderr, which the one-line error tests count."""
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    for logger in loggers:
        for handler in list(logger.handlers):
            if getattr(getattr(handler, "stream", None), "closed", False):
                logger.removeHandler(handler)
    yield


def compose_config(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.fixture
def tiny_config():
    """SDCIB with a tiny network on two views; `tiny_config("model=kmeans")` for methods without one."""

    def make(*extra: str):
        network = [] if any(e.startswith("model=") for e in extra) else TINY_SDCIB
        return compose_config([*network, *RUNNER, *extra])

    return make


def load_script(name: str):
    """A script of scripts/ imported as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
