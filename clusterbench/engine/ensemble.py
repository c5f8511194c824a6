"""Vectorised sweeps: the members of a multirun grid trained in one process as one batched model.

`python -m clusterbench.train -m +sweep=sdcib_alpha_beta +launcher=vectorized` composes every
job of the sweep as Hydra would and writes each job's folder (.hydra/config.yaml, overrides)
exactly like a sequential multirun. Jobs whose configs differ only in the method's
`member_keys` (SDCIB: model.alpha, model.beta) are one *group*: the engine builds each
member as its separate run would (same seed, same RNG state, so the same initial weights),
stacks their parameters and buffers along the leading member dimension, and trains them
together with one batched matmul per layer. Members of a group share the seed, so the batch
order and every random draw are those of each member's separate run; each member's metrics
match its separate run within float tolerance (tests/test_ensemble.py). Jobs with other
differences (another seed, dataset, trainer setting) form other groups, trained one after the
other.

Each member folder gets its own metrics.csv, results.json, predictions.npz and a single-run
checkpoint (its slice of the stacked state), so report cannot tell the two kinds of sweep
apart, and `resume=<member folder>` continues any member as a plain run.

`Members` holds that per-member bookkeeping for the loop (engine/loop.py's FitRun): one method
per step, each for all members. A plain run is a `Members` of one, not a thinner single-run
object: one code path writes every run folder, so a plain run and a vectorised member cannot
drift apart, and a loop over one member costs nothing next to an epoch. Where one member
differs it says so in place (its state is the fit's own, unsliced; its failure raises).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from clusterbench.engine.build import build
from clusterbench.engine.checkpoint import (
    capture_rng,
    restore_rng,
    save_checkpoint,
    shrink_finished_checkpoints,
    write_file,
    write_json,
)
from clusterbench.engine.provenance import config_hash
from clusterbench.engine.results import select, write_failure
from clusterbench.engine.sweep import claim_fresh_folder, folder_problem, lock_run_folder, unlock_run_folder
from clusterbench.errors import ConfigError, TrainingError, first_line

log = logging.getLogger(__name__)


# --- stacking and slicing states along the member dimension ------------------------------


def stack_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Module state dicts of G one-member modules -> the state dict of one G-member module."""
    return {key: torch.cat([state[key] for state in states], dim=0) for key in states[0]}


def member_state(state: dict[str, torch.Tensor], member: int, members: int) -> dict[str, torch.Tensor]:
    """Member `member`'s slice of a G-member module's state dict (the inverse of stack_states)."""
    return {key: _rows(value, member, members) for key, value in state.items()}


def stack_optimizer_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Optimiser state dicts of G one-member runs -> the one of the stacked parameters.

    Adam and the other element-wise optimisers then update every member exactly as its own
    optimiser would; scalar entries (the step count) are shared by all members."""
    merged = {"param_groups": states[0]["param_groups"], "state": {}}
    for index, first in states[0]["state"].items():
        merged["state"][index] = {
            name: torch.cat([s["state"][index][name] for s in states]) if _stacked(value) else value for name, value in first.items()
        }
    return merged


def member_optimizer_state(state: dict[str, Any], member: int, members: int) -> dict[str, Any]:
    return {
        "param_groups": state["param_groups"],
        "state": {
            index: {name: _rows(value, member, members) if _stacked(value) else value for name, value in entry.items()}
            for index, entry in state["state"].items()
        },
    }


def _stacked(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() > 0


def _rows(value: torch.Tensor, member: int, members: int) -> torch.Tensor:
    rows = value.shape[0] // members  # member-major: member g owns rows g*rows .. (g+1)*rows - 1
    return value[member * rows : (member + 1) * rows].clone()


# --- grouping jobs into vectorisable groups ----------------------------------------------------


def member_keys(cfg: DictConfig) -> tuple[str, ...]:
    """The model keys that may differ inside one group (the method's `member_keys`)."""
    return tuple(getattr(get_class(cfg.model._target_), "member_keys", ()))


def group_key(cfg: DictConfig) -> str:
    """Jobs with equal keys train as one group: the config without the member keys."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in member_keys(cfg):
        plain["model"].pop(key, None)
    return OmegaConf.to_yaml(OmegaConf.create(plain))


def group_jobs(cfgs: Sequence[DictConfig], max_members: int | None = None) -> list[list[int]]:
    """Indices of the jobs, grouped; a group keeps the jobs' order and has at most
    `max_members` members (None: no limit)."""
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    for index, cfg in enumerate(cfgs):
        key = group_key(cfg) if member_keys(cfg) else f"alone-{index}"
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(index)
    result = []
    for key in order:
        jobs = groups[key]
        size = max_members or len(jobs)
        result += [jobs[i : i + size] for i in range(0, len(jobs), size)]
    return result


# --- the launcher's work ------------------------------------------------------------------------


def launch_vectorized(
    hydra_context,
    config: DictConfig,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    prepare: Callable[[DictConfig], dict[str, Any]],
    train: Callable[[list[dict[str, Any]]], list[dict[str, Any] | BaseException]],
    max_members: int | None = None,
):
    """Prepares every job's folder through Hydra's run_job (so it looks like any multirun
    job), then trains the groups; returns one JobReturn per job."""
    from hydra.core.utils import JobStatus, configure_log, run_job, setup_globals
    from omegaconf import open_dict

    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    returns, prepared = [], []
    for offset, overrides in enumerate(job_overrides):
        idx = initial_job_idx + offset
        sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = idx
            sweep_config.hydra.job.num = idx
        ret = run_job(
            hydra_context=hydra_context,
            task_function=prepare,
            config=sweep_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        returns.append(ret)
        if ret.status == JobStatus.COMPLETED:
            prepared.append((offset, ret._return_value))
        else:
            # a job whose config fails: recorded in its folder like any failed job, and the
            # sweep goes on (a FAILED JobReturn would make Hydra's sweeper raise and stop)
            _record_failed_job(ret, overrides, idx)
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)

    groups = group_jobs([job["cfg"] for _, job in prepared], max_members)
    log.info("vectorised sweep: %d jobs in %d group(s) of sizes %s", len(prepared), len(groups), [len(g) for g in groups])
    for group in groups:
        jobs = [prepared[i] for i in group]
        outcomes = train([job for _, job in jobs])
        for (offset, _), outcome in zip(jobs, outcomes):
            returns[offset].status = JobStatus.COMPLETED
            # what a job of the default launcher returns: its ACC, or NaN when it failed
            failed = isinstance(outcome, BaseException) or outcome is None
            returns[offset].return_value = float("nan") if failed else outcome["metrics"]["acc"]
    return returns


def _record_failed_job(ret, overrides: Sequence[str], idx: int) -> None:
    from hydra.core.utils import JobStatus, filter_overrides

    from clusterbench.engine.results import write_failure
    from clusterbench.errors import ClusterbenchError, RunFolderError, first_line

    err = ret._return_value
    message = str(err) if isinstance(err, ClusterbenchError) else f"{type(err).__name__}: {first_line(err)}"
    run_dir = ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg is not None else None
    print(f"error: job #{idx} ({' '.join(filter_overrides(overrides))}): {message}", file=sys.stderr)
    if run_dir is not None and not isinstance(err, RunFolderError):
        meta = {"model": ret.hydra_cfg.hydra.runtime.choices.get("model"), "overrides": list(overrides)}
        write_failure(run_dir, ret.cfg, meta, message)
    ret.status = JobStatus.COMPLETED
    ret.return_value = float("nan")


def check_members(cfgs: Sequence[DictConfig]) -> None:
    """One-line error when the configs cannot share one batched model."""
    keys = {group_key(cfg) for cfg in cfgs}
    if len(keys) > 1:
        raise ConfigError("vectorised members must differ only in " + ", ".join(f"model.{k}" for k in member_keys(cfgs[0])))


# --- the members of one fit ----------------------------------------------------------------------

# evaluation values written into metrics.csv at every evaluation (the collapse monitor included)
# (data without labels: silhouette and Calinski-Harabasz in place of ACC, NMI and ARI)
MONITORED = ("acc", "nmi", "ari", "silhouette", "calinski_harabasz", "nonempty_clusters", "largest_cluster_share", "assignment_entropy")
CHECKPOINT = Path("checkpoints") / "last.pt"


class Member:
    """One run's own share of a (possibly vectorised) fit: its folder, config, logger and
    evaluations. A plain run is a fit with one member."""

    def __init__(self, cfg: DictConfig, run_dir, meta: dict[str, Any]) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.meta = dict(meta)
        self.evaluations: list[dict[str, Any]] = []
        self.latest: dict[str, Any] = {}  # metrics of the latest evaluation
        self.latest_pred = None  # (epoch, hard labels) of the latest evaluation
        self.error = None  # the TrainingError that stopped this member
        self.logger = None
        self.config_sha256 = config_hash(cfg)

    @property
    def active(self) -> bool:
        return self.error is None


def check_writable(folder: Path) -> None:
    """Creates `folder` and probes it with a temporary file (engine/sweep.py's folder_problem);
    ConfigError naming the folder when that fails, before any data are loaded or trained."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"output folder {folder} is not writable ({err.strerror or first_line(err)})") from None
    problem = folder_problem(folder)
    if problem is not None:
        raise ConfigError(f"output folder {folder} is not writable ({problem})")


class _NullLogger:
    """What a process that writes nothing logs to (a DDP rank other than 0: rank 0 writes
    metrics.csv and wandb)."""

    def start(self, *args, **kwargs) -> None:
        pass

    def log(self, row) -> None:
        pass

    def sync(self) -> None:
        pass

    def summary(self, results) -> None:
        pass

    def finish(self) -> None:
        pass


class Members:
    """Every member of one fit and their bookkeeping: one method per step (claim the folders,
    start the loggers, log a row, record an evaluation, write the checkpoints, write
    results.json), each done for all members, so the loop (engine/loop.py) never loops over
    them. A plain run is a `Members` of one: the same code writes its folder, with no second
    path to keep in step; what differs for one member is said where it differs (its state
    is the fit's own, unsliced; a failure stops the fit; results.json has no `vectorised`).

    `writes` (a method's argument): whether this process writes into the folders: false on a
    DDP rank other than 0, and in the estimator's in-memory fit; such a process keeps the same
    records in memory."""

    def __init__(self, cfgs: Sequence[DictConfig], run_dirs: Sequence[Path], metas: Sequence[dict[str, Any]]) -> None:
        self.all = [Member(cfg, run_dir, meta) for cfg, run_dir, meta in zip(cfgs, run_dirs, metas)]

    def __len__(self) -> int:
        return len(self.all)

    def __iter__(self):
        return iter(self.all)

    def __getitem__(self, index: int) -> Member:
        return self.all[index]

    @property
    def cfgs(self) -> list[DictConfig]:
        return [member.cfg for member in self.all]

    @property
    def any_active(self) -> bool:
        return any(member.active for member in self.all)

    def overrides(self) -> list[str]:
        """Every member's command-line overrides, without Hydra's + and ~ prefixes."""
        return [str(o).lstrip("+~") for member in self.all for o in member.meta.get("overrides") or []]

    def destination(self) -> str:
        """The end of a run's first line: where it writes."""
        if len(self.all) > 1:
            return f", {len(self.all)} vectorised members -> {', '.join(str(m.run_dir) for m in self.all)}"
        return f" -> {self.all[0].run_dir}"

    def folder_of(self, path) -> Path:
        """The member folder holding `path` (a file that could not be written), else the first."""
        inside = (m.run_dir for m in self.all if path and str(path).startswith(str(m.run_dir)))
        return next(inside, self.all[0].run_dir)

    # --- folders and loggers ----------------------------------------------------------------------

    def claim(self, resumed: bool) -> None:
        """Each folder: writable, locked for this process, and (a fresh run) not holding a
        finished or resumable run unless overwrite=true (engine/sweep.py)."""
        for member in self.all:
            check_writable(member.run_dir)
            if resumed:
                lock_run_folder(member.run_dir)
            else:
                # a sweep job trains afresh a folder that its job_state found failed or unfinished
                claim_fresh_folder(member.run_dir, bool(member.cfg.get("overwrite")), unfinished_ok=bool(member.meta.get("sweep_job")))

    def unlock(self) -> None:
        for member in self.all:
            unlock_run_folder(member.run_dir)

    def start_loggers(self, writes: bool, resume_epoch: int | None) -> None:
        for member in self.all:
            member.logger = build(member.cfg.logger) if writes else _NullLogger()
            config = OmegaConf.to_container(member.cfg, resolve=True)
            member.logger.start(member.run_dir, config, member.run_dir.name, resume_epoch=resume_epoch)

    def log(self, rows: list[dict[str, Any]]) -> None:
        for member, row in zip(self.all, rows):
            if member.active:
                member.logger.log(row)

    def progress_fields(self, rows: list[dict[str, Any]]) -> dict[str, str]:
        """The progress bar's loss (the lowest of the members') and the first member's metrics."""
        shown = rows[0] if len(self.all) == 1 else {"loss": min(r["loss"] for r in rows)}
        latest = self.all[0].latest
        return {"loss": f"{shown['loss']:.4f}", **{k: f"{latest[k]:.3f}" for k in ("acc", "nmi", "ari") if k in latest}}

    # --- failures ---------------------------------------------------------------------------------

    def fail(self, member: Member, message: str, data, writes: bool) -> None:
        """`member` stops: its results.json says why. The others go on; a member alone raises."""
        member.error = TrainingError(message)
        if writes:
            write_failure(member.run_dir, member.cfg, member.meta, message, data)
        member.logger.finish()
        if len(self.all) == 1:
            raise member.error

    def stop_non_finite(self, epoch: int, rows: list[dict[str, Any]], data, writes: bool) -> None:
        """A member whose epoch losses are not finite stops, its last good checkpoint kept."""
        for member, row in zip(self.all, rows):
            bad = [f"{k}={v}" for k, v in row.items() if k != "epoch" and not math.isfinite(v)]
            if member.active and bad:
                path = member.run_dir / CHECKPOINT
                kept = f"the last good checkpoint is {path}" if path.exists() else "no checkpoint had been written yet"
                self.fail(member, f"non-finite loss at epoch {epoch} ({', '.join(bad)}); training stopped, {kept}", data, writes)

    # --- evaluations, checkpoints, results ----------------------------------------------------------

    def resume_evaluations(self, evaluations: list[dict[str, Any]]) -> None:
        """The evaluations a resumed run's checkpoint holds (resume continues one member)."""
        (member,) = self.all
        member.evaluations = evaluations
        member.latest = evaluations[-1]["metrics"] if evaluations else {}

    def record_evaluations(
        self,
        epoch: int,
        rows: list[dict[str, Any]],
        outputs: Sequence[torch.Tensor],
        evaluate: Callable,
        selection: str,
        predictions: Callable | None,
    ) -> None:
        """Each active member's evaluation of its `outputs`: `evaluate(outputs)` -> (metrics,
        hard labels, candidates record or None), into its evaluation record, its row (the
        MONITORED values) and, when `selection` keeps it, predictions.npz with the arrays
        `predictions(outputs, labels, candidates, epoch)` gives (None: nothing written)."""
        for member, member_out, row in zip(self.all, outputs, rows):
            if not member.active:
                continue
            metrics, pred, candidates = evaluate(member_out)
            member.evaluations.append(
                {"epoch": epoch, "loss": row.get("loss"), "last_batch_loss": row.get("last_batch_loss"), "metrics": metrics}
            )
            if candidates is not None:
                member.evaluations[-1]["candidates"] = candidates
            if predictions is not None and select(member.evaluations, selection) is member.evaluations[-1]:
                saved = predictions(member_out, pred, candidates, epoch)
                write_file(member.run_dir / "predictions.npz", lambda f: np.savez_compressed(f, **saved))
            member.latest = metrics
            member.latest_pred = (epoch, pred)
            row.update({k: metrics[k] for k in MONITORED if k in metrics})

    def write_checkpoints(
        self,
        epoch: int,
        mode: str,
        method_state: dict,
        optimizer_states: dict[str, dict],
        shared: dict[str, Any],
        optimizers_restarted: list[int],
        keep_epochs: bool,
    ) -> None:
        """checkpoints/last.pt of every active member (its slice of the stacked states): `mode`
        full (with `shared`, what resume needs besides the states, and the epochs after which
        the optimisers were restarted; previous.pt kept) or weights; with `keep_epochs`,
        checkpoints/epoch_NNNN.pt as well."""
        for g, method_slice, optimizer_slice in member_checkpoints(method_state, optimizer_states, len(self.all)):
            member = self.all[g]
            if not member.active:
                continue
            state = {
                "epoch": epoch,
                "kind": mode,
                "method": method_slice,
                "config": OmegaConf.to_container(member.cfg, resolve=True),
                "config_sha256": member.config_sha256,
            }
            if mode == "full":
                state.update(shared, optimizers=optimizer_slice, evaluations=member.evaluations)
                if optimizers_restarted:
                    state["optimizers_restarted_at"] = optimizers_restarted
            member.logger.sync()  # metrics.csv's rows up to this epoch on disk before the checkpoint
            save_checkpoint(member.run_dir / CHECKPOINT, state, keep_previous=mode == "full")
            if keep_epochs:
                save_checkpoint(member.run_dir / "checkpoints" / f"epoch_{epoch:04d}.pt", state)

    def save_embeddings(self, features: Sequence[torch.Tensor]) -> None:
        """embedding.npz of every active member: its `features` (the final model's
        representation, report's t-SNE input) with the clusters of its latest evaluation."""
        for member, member_features in zip(self.all, features):
            if member.active and member.latest_pred is not None:
                epoch, pred = member.latest_pred
                array = member_features.cpu().numpy().astype(np.float16)  # for t-SNE: half precision is plenty
                write_file(member.run_dir / "embedding.npz", lambda f: np.savez_compressed(f, features=array, y_pred=pred, epoch=epoch))

    def finish(
        self, results_of: Callable[[Member], dict[str, Any]], extra: dict[str, Any], writes: bool, profile: Callable | None, when_done: str
    ) -> list[dict[str, Any] | TrainingError]:
        """results.json (`results_of(member)` with `extra`), profile.json (`profile()`) when
        given, and the checkpoints shrunk as `when_done` says, for every member that did not
        fail; each member's results, or the error that stopped it."""
        outcomes: list[dict[str, Any] | TrainingError] = []
        for g, member in enumerate(self.all):
            if not member.active:
                outcomes.append(member.error)
                continue
            results = results_of(member)
            results.update(extra)
            if len(self.all) > 1:
                results["vectorised"] = {"members": len(self.all), "member": g, "wall_time_is_shared": True}
            if writes:
                if profile is not None:
                    write_json(member.run_dir / "profile.json", profile())
                write_json(member.run_dir / "results.json", results)
                shrink_finished_checkpoints(member.run_dir / "checkpoints", when_done)
            member.logger.summary(results)
            member.logger.finish()
            outcomes.append(results)
        return outcomes


class MembersDoNotFit(ConfigError):
    """A group's stacked model would not fit in the memory available; `fits` members would
    (at least 1). Raised before anything is trained, so the group can be split and rerun."""

    def __init__(self, message: str, fits: int) -> None:
        super().__init__(message)
        self.fits = fits


# copies of the weights that training holds: the weights, their gradients, Adam's two moments
# and the optimiser step's temporaries (a paper-size SDCIB group of about 20 members trained at
# 20.5 GB resident, about 4.5x its weights); activations come on top
TRAINING_COPIES = 5
# the share of the free memory a group may plan to use (activations, the data's batches, the
# evaluation passes and the allocator's slack share the rest)
MEMORY_HEADROOM = 0.8


def available_memory(device: torch.device | str) -> int | None:
    """Bytes free for new tensors on `device`: the GPU's free memory, or the host's
    MemAvailable (Linux). None where it cannot be read (the check is then skipped)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def release_memory() -> None:
    """Hands memory that a finished fit no longer uses back to the system, so that the next
    job of the process (the next part of a split group, whose check reads the free memory, or
    the next job of a multirun) finds it free. Three holders: reference cycles (tracebacks of
    exceptions caught inside torch and omegaconf reach the fit's frames, and through them its
    model and optimiser states) until Python's cyclic collector runs; glibc's heap, which keeps
    freed blocks in the process (a 4-member paper-size SDCIB fit left 2.6 GiB resident); and
    PyTorch's CUDA cache, which `torch.cuda.mem_get_info` counts as used."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (AttributeError, OSError):  # not glibc (musl): nothing to trim
            pass
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def state_bytes(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values() if isinstance(t, torch.Tensor))


def members_that_fit(member_bytes: int, available: int | None, members: int) -> int:
    """How many members of `member_bytes` weights each a batched model can train in
    `available` bytes (all of them when the memory is unknown)."""
    if available is None or member_bytes <= 0:
        return members
    return max(1, min(members, int(available * MEMORY_HEADROOM) // (TRAINING_COPIES * member_bytes)))


class InvalidMembers(ConfigError):
    """Members of a group whose own config fails when built on its own (e.g. a value out of
    range): `errors` maps each one's index to its own error. Raised before anything is stacked
    or trained, so the group trains without them (as the sequential launcher would)."""

    def __init__(self, errors: dict[int, ConfigError]) -> None:
        super().__init__("; ".join(str(err) for err in errors.values()))
        self.errors = errors


def build_members(cfgs: Sequence[DictConfig], build_method: Callable, info, generator: torch.Generator, device: torch.device | str = "cpu"):
    """The method of one run, or G runs' methods stacked into one G-member method. Every member
    is built on its own first, from the same RNG state, as its separate run would be: it starts
    from the same weights, and a member whose config fails is found alone (InvalidMembers).
    MembersDoNotFit, before the stacked model is built, when G members' weights, gradients and
    optimiser states would not fit in the memory `device` has free."""
    if len(cfgs) == 1:
        return build_method(cfgs[0], info)
    check_members(cfgs)
    rng = capture_rng(generator)
    states, errors = [], {}
    for g, cfg in enumerate(cfgs):
        restore_rng(rng, generator)
        try:
            state = build_method(cfg, info).state_dict()
        except ConfigError as err:
            errors[g] = err
            continue
        if not states:
            _check_memory(state_bytes(state), len(cfgs), device)
        states.append(state)
    if errors:
        raise InvalidMembers(errors)
    built = capture_rng(generator)  # where each separate run's build leaves the RNG
    restore_rng(rng, generator)
    stacked = build_method(cfgs[0], info, members=len(cfgs))
    stacked.load_state_dict(stack_states(states))
    restore_rng(built, generator)
    return stacked


def _check_memory(member_bytes: int, members: int, device: torch.device | str) -> None:
    available = available_memory(device)
    fits = members_that_fit(member_bytes, available, members)
    if fits < members:
        need = members * TRAINING_COPIES * member_bytes / 2**30
        raise MembersDoNotFit(
            f"{members} vectorised members need about {need:.1f} GiB for weights, gradients and optimiser states, "
            f"{available / 2**30:.1f} GiB are free on {device}: at most {fits} per batched model (hydra.launcher.max_members={fits})",
            fits,
        )


def member_checkpoints(method_state: dict, optimizer_states: dict[str, dict], members: int):
    """(member index, its method state, its optimiser states) for each member of a fit; one
    member's states are the fit's own."""
    for g in range(members):
        if members == 1:
            yield g, method_state, optimizer_states
        else:
            yield g, member_state(method_state, g, members), {k: member_optimizer_state(s, g, members) for k, s in optimizer_states.items()}


def clip_grad_norm(params: list[torch.Tensor], max_norm: float, members: int = 1) -> None:
    """torch.nn.utils.clip_grad_norm_ for each member on its own: the stacked parameters'
    gradients are member-major along dimension 0, and a member's norm must not see the others'."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    if members == 1:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        return
    squares = sum(p.grad.detach().float().reshape(members, -1).pow(2).sum(1) for p in params)
    scale = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(scale.to(p.grad.dtype).reshape(members, *[1] * (p.grad.dim() - 1)).repeat_interleave(p.grad.shape[0] // members, 0))
