"""`python -m clusterbench.train [group=option ...] [key=value ...]`: one run (or `-m` a sweep).

Examples:
    python -m clusterbench.train                                 # SDCIB on the embedded handwritten data
    python -m clusterbench.train model=kmeans dataset=bdgp paths.data_dir=/data
    python -m clusterbench.train -m seed=0,1,2,3,4
    python -m clusterbench.train -m +sweep=sdcib_alpha_beta +launcher=vectorized   # one process, batched
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
from clusterbench.engine.loop import fit, fit_members
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


def job_meta(hydra_cfg) -> dict[str, Any]:
    return {
        "model": hydra_cfg.runtime.choices.get("model"),
        "dataset": hydra_cfg.runtime.choices.get("dataset"),
        "overrides": list(hydra_cfg.overrides.task),
    }


def summary_line(results: dict[str, Any], meta: dict[str, Any], run_dir: Path | str) -> str:
    m = results["metrics"]
    return (
        f"{meta['model']} on {results['dataset']['name']} (seed {results['seed']}, {results['selection']['rule']} epoch "
        f"{results['selection']['epoch']}): ACC {m['acc']:.4f}  NMI {m['nmi']:.4f}  ARI {m['ari']:.4f}  -> {run_dir}"
    )


def prepare_job(cfg: DictConfig) -> dict[str, Any]:
    """A vectorised sweep's per-job step, run inside Hydra's run_job (which writes the job's
    folder and .hydra/ files): the validated, resolved config, its folder and its meta."""
    hydra_cfg = HydraConfig.get()
    if cfg.get("resume"):
        raise ConfigError("resume= is for one run folder; resume a vectorised member with resume=<member folder>")
    check_config(cfg)
    OmegaConf.resolve(cfg)  # ${...} must not be read later, under another job's Hydra state
    return {"cfg": cfg, "run_dir": Path(hydra_cfg.runtime.output_dir), "meta": job_meta(hydra_cfg)}


def train_group(jobs: list[dict[str, Any]]) -> list[dict[str, Any] | BaseException]:
    """Trains one group of a vectorised sweep as one batched model; one outcome per job."""
    try:
        outcomes = fit_members([j["cfg"] for j in jobs], [j["run_dir"] for j in jobs], [j["meta"] for j in jobs])
    except ClusterbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return [err] * len(jobs)
    for job, outcome in zip(jobs, outcomes):
        if isinstance(outcome, BaseException):
            print(f"error: {job['run_dir']}: {outcome}", file=sys.stderr)
        else:
            print(summary_line(outcome, job["meta"], job["run_dir"]))
    return outcomes


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    meta = job_meta(hydra_cfg)
    try:
        results = run(cfg, Path(hydra_cfg.runtime.output_dir), meta)
    except ClusterbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        if hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN":
            return None  # one bad job does not stop the sweep; its results.json says why
        sys.exit(2)
    print(summary_line(results, meta, hydra_cfg.runtime.output_dir))
    return results["metrics"]["acc"]


if __name__ == "__main__":
    main()
