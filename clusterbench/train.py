"""`python -m clusterbench.train [group=option ...] [key=value ...]`: one run (or `-m` a sweep).

Examples:
    python -m clusterbench.train                                 # SDCIB on the embedded handwritten data
    python -m clusterbench.train model=kmeans dataset=bdgp paths.data_dir=/data
    python -m clusterbench.train -m seed=0,1,2,3,4
    python -m clusterbench.train resume=outputs/runs/<run folder>
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from clusterbench.config_check import check_config
from clusterbench.engine.loop import fit
from clusterbench.errors import ClusterbenchError, ConfigError

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")


def load_resumed_config(cfg: DictConfig) -> tuple[DictConfig, Path]:
    """The config a run folder was started with, so that `resume=<folder>` continues that run."""
    run_dir = Path(cfg.resume)
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.exists():
        raise ConfigError(f"resume={cfg.resume}: not a run folder ({saved} is missing)")
    resumed = OmegaConf.load(saved)
    with open_dict(resumed):
        resumed.resume = str(run_dir)
    return resumed, run_dir


def run(cfg: DictConfig, run_dir: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validates the config (nothing loaded yet), then trains and evaluates."""
    if cfg.get("resume"):
        cfg, run_dir = load_resumed_config(cfg)
    check_config(cfg)
    return fit(cfg, run_dir, meta)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    meta = {
        "model": hydra_cfg.runtime.choices.get("model"),
        "dataset": hydra_cfg.runtime.choices.get("dataset"),
        "overrides": list(hydra_cfg.overrides.task),
    }
    try:
        results = run(cfg, Path(hydra_cfg.runtime.output_dir), meta)
    except ClusterbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        if hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN":
            return None  # one bad job does not stop the sweep; its results.json says why
        sys.exit(2)
    m = results["metrics"]
    print(
        f"{meta['model']} on {results['dataset']['name']} (seed {results['seed']}, {results['selection']['rule']} epoch "
        f"{results['selection']['epoch']}): ACC {m['acc']:.4f}  NMI {m['nmi']:.4f}  ARI {m['ari']:.4f}  -> {hydra_cfg.runtime.output_dir}"
    )
    return m["acc"]


if __name__ == "__main__":
    main()
