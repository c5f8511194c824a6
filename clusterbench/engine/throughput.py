"""How fast a run trained, and where its time went: results.json's `throughput` block, the
figure at the end of the run's last line, and (trainer.profile=true) profile.json.

`RunClock` times the fit's phases with the wall clock. The coarse phases (train epochs,
evaluations, checkpoints, the embedding pass, setup) are always timed, once per phase: their
ends already wait for the device (an epoch ends in its one host sync, an evaluation reads its
predictions on the host), so no sync is added to a step. The phases inside an epoch (data,
augmentation, step, epoch hooks) are timed only with trainer.profile=true, which on a GPU
synchronises at each of their boundaries: a profiled run is slower, never different.

FLOPs: the first step of each kind (labelled, unlabeled) in an epoch runs under a counting
dispatch mode that adds up torch.utils.flop_counter's formulas (matmul, convolution and
attention ops of the forward, backward and optimiser: the "model FLOPs" of MFU) and calls every
op unchanged (no decomposition, no random draws: the step's numbers are bit for bit those of an
uncounted step); the epoch's FLOPs are that count times its steps of that kind. After the
first, an epoch's step is counted again only while at most RECOUNT_SHARE of the kind's steps
have been (else the kind's last count stands), so a one-step epoch does not pay the mode each
time. The peak is
measured in the same process by `matmul_peak` (a few square matmuls on the training device in
the run's dtype; bf16 on CUDA), once per process. Not counted: work outside the step (epoch
hooks such as PICI's and MFLVC's k-means or MFLVC's full-batch tune step, evaluation), so the
fraction understates such methods. Under DDP the FLOPs are rank 0's (its share of the batch,
against one device's peak) and the samples the global batch's; a vectorised group's FLOPs and
times are those of all its members together.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from typing import Any

import torch

# off only in tests that compare counted and uncounted runs
COUNT_FLOPS = True
PEAK_SECONDS = 0.2  # how long the peak probe runs (after one warm-up matmul)
# an epoch's first step of a kind is counted again while at most this share of the kind's steps
# has been counted; otherwise the kind's last count stands (a change of stage shows within ~20 steps)
RECOUNT_SHARE = 0.05
PEAK_SIZE = {"cpu": 1024, "cuda": 8192}  # square matmul side: large enough to reach the peak
FLOPS_COUNTED = (
    "matmul, convolution and attention FLOPs (torch.utils.flop_counter's formulas) of the forward, backward and "
    "optimiser ops of an epoch's first step of each kind (counted again while at most 5% of the kind's steps have "
    "been, else its last count stands), times that epoch's steps of that kind"
)
SCOPE = "the epochs this process trained: a resumed run's figures cover the epochs after the resume only"
_NULL = contextlib.nullcontext()
_PEAKS: dict[tuple[str, str, int], dict[str, Any]] = {}


def _flop_formulas() -> dict:
    try:
        from torch.utils.flop_counter import flop_registry
    except ImportError:  # an older torch: no FLOPs, the rest of the block still holds
        return {}
    return flop_registry


SPARSE_PRODUCTS = {"mm", "addmm", "_sparse_addmm", "_sparse_mm"}


def _sparse_product_flops(func, sparse: torch.Tensor, out) -> int:
    """A sparse (m, k) x dense (k, n) product: one multiply-add per stored entry and column;
    other ops on sparse tensors (transpose, coalesce, conversions) count nothing."""
    if func._overloadpacket.__name__ not in SPARSE_PRODUCTS or not isinstance(out, torch.Tensor) or out.dim() != 2:
        return 0
    return 2 * int(sparse._nnz()) * out.shape[1]


try:
    from torch.utils._python_dispatch import TorchDispatchMode
except ImportError:  # pragma: no cover - every supported torch has it
    TorchDispatchMode = None


if TorchDispatchMode is not None:

    class FlopCount(TorchDispatchMode):
        """FLOPs of the ops run inside it; each op runs exactly as without it."""

        def __init__(self) -> None:
            super().__init__()
            self.formulas = _flop_formulas()
            self.flops = 0
            self.failed: str | None = None if self.formulas else "torch.utils.flop_counter has no formulas here"

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            sparse = [a for a in args if isinstance(a, torch.Tensor) and a.layout != torch.strided]
            if sparse:  # the dense formulas would count a sparse operand's zeros (ICMVC's graph)
                self.flops += _sparse_product_flops(func, sparse[0], out)
                return out
            formula = self.formulas.get(func._overloadpacket)
            if formula is not None and self.failed is None:
                try:
                    self.flops += int(formula(*args, **kwargs, out_val=out))
                except Exception as err:  # noqa: BLE001 - a formula that fails loses the count, never the step
                    self.failed = f"{func}: {type(err).__name__}"
            return out


class _Phase:
    """One timed phase: exclusive time (its nested phases' time taken out) and inclusive time."""

    __slots__ = ("clock", "name", "start", "children")

    def __init__(self, clock: "RunClock", name: str) -> None:
        self.clock, self.name = clock, name

    def __enter__(self) -> "_Phase":
        self.clock._sync()
        self.children = 0.0
        self.start = time.perf_counter()
        self.clock._stack.append(self)
        return self

    def __exit__(self, *exc) -> None:
        self.clock._sync()
        spent = time.perf_counter() - self.start
        clock = self.clock
        clock._stack.pop()
        clock.inclusive[self.name] += spent
        clock.exclusive[self.name] += spent - self.children
        clock.calls[self.name] += 1
        if clock._stack:
            clock._stack[-1].children += spent


class _Counted:
    """Counts the FLOPs of one step into the clock's record of this epoch's steps of `kind`."""

    def __init__(self, clock: "RunClock", kind: str) -> None:
        self.clock, self.kind = clock, kind

    def __enter__(self) -> None:
        self.mode = FlopCount()
        self.mode.__enter__()

    def __exit__(self, *exc) -> None:
        self.mode.__exit__(*exc)
        record = self.clock._epoch_steps[self.kind]
        record[1] = None if self.mode.failed else self.mode.flops
        self.clock._last_count[self.kind] = record[1]
        if self.mode.failed:
            self.clock.flops_problem = f"FLOPs not counted: {self.mode.failed}"


class _TimedAugment:
    """An augmentation whose calls are timed as the "augmentation" phase; everything else of it
    (test_view, size) is the augmentation's own."""

    def __init__(self, augment, clock: "RunClock") -> None:
        self._augment, self._clock = augment, clock

    def __call__(self, *args, **kwargs):
        with self._clock.detail("augmentation"):
            return self._augment(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._augment, name)


class RunClock:
    """The fit's phase times, samples and counted FLOPs (see the module docstring)."""

    def __init__(self, profile: bool = False, count_flops: bool | None = None) -> None:
        self.profile = bool(profile)
        self.count_flops = COUNT_FLOPS if count_flops is None else count_flops
        self.started = time.perf_counter()
        self.device: torch.device | None = None
        self.inclusive: dict[str, float] = defaultdict(float)
        self.exclusive: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[_Phase] = []
        self.train_samples = 0
        self.train_epochs = 0
        self.eval_samples = 0
        self.eval_passes = 0
        self.flops = 0  # counted FLOPs of the trained epochs (None once an epoch could not be counted)
        self.flops_problem: str | None = None
        self._epoch_steps: dict[str, list] = {}  # kind -> [steps, FLOPs of the counted one]
        self._last_count: dict[str, int | None] = {}  # kind -> FLOPs of its last counted step
        self._steps_seen: dict[str, int] = defaultdict(int)
        self._counts_made: dict[str, int] = defaultdict(int)

    def attach(self, hardware) -> None:
        """The training device (a profiled run on a GPU synchronises at phase boundaries);
        under torch.compile no FLOPs are counted (a dispatch mode and compiled graphs do not mix)."""
        self.device = hardware.device
        self.precision = hardware.precision
        if getattr(hardware, "compile", False) and self.count_flops:
            self.count_flops = False
            self.flops_problem = "FLOPs not counted under torch.compile (hardware.compile=true)"

    def watch_augmentation(self, inputs) -> None:
        """Profiling: the augmentation of training batches timed as its own phase, inside "data"
        (image inputs call `inputs.augment`; the same object is called, only timed)."""
        augment = getattr(inputs, "augment", None)
        if self.profile and augment is not None:
            inputs.augment = _TimedAugment(augment, self)

    def lap(self, name: str) -> None:
        """Books the time since the clock started that no phase holds yet to `name` (setup:
        data loading, the method's construction, a resume's checkpoint)."""
        spent = max(0.0, time.perf_counter() - self.started - sum(self.exclusive.values()))
        self.exclusive[name] += spent
        self.inclusive[name] += spent
        self.calls[name] += 1

    def _sync(self) -> None:
        if self.profile and self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # --- what the loop calls ---------------------------------------------------------------------

    def phase(self, name: str) -> _Phase:
        """A phase timed in every run (train, evaluation, checkpoint, embedding, setup)."""
        return _Phase(self, name)

    def detail(self, name: str):
        """A phase inside an epoch, timed only when profiling (data, augmentation, step)."""
        return _Phase(self, name) if self.profile else _NULL

    def step(self, kind: str = "train"):
        """Around one optimiser step (forward, backward, optimiser): counts the FLOPs of the
        epoch's first step of `kind`, and the steps."""
        record = self._epoch_steps.setdefault(kind, [0, self._last_count.get(kind)])
        record[0] += 1
        self._steps_seen[kind] += 1
        if record[0] == 1 and self.count_flops and self.flops is not None and self._recount(kind):
            self._counts_made[kind] += 1
            return _Counted(self, kind)
        return _NULL

    def _recount(self, kind: str) -> bool:
        """Count this step again? Always the first of a kind; then while at most RECOUNT_SHARE of
        the kind's steps have been counted (a method with one step an epoch - full-batch ICMVC,
        DIVIDE - would otherwise pay the counting mode every step: ~7% of ICMVC's epoch on Event)."""
        if kind not in self._last_count:
            return True
        return self._counts_made[kind] < RECOUNT_SHARE * self._steps_seen[kind]

    def trained(self, samples: int) -> None:
        """After an epoch: its samples, and its FLOPs (each kind's counted step x its steps)."""
        self.train_samples += int(samples)
        self.train_epochs += 1
        if self.count_flops and self.flops is not None:
            counted = [(steps, flops) for steps, flops in self._epoch_steps.values()]
            if counted and all(flops is not None for _, flops in counted):
                self.flops += sum(steps * flops for steps, flops in counted)
            else:
                self.flops = None
        self._epoch_steps = {}

    def evaluated(self, samples: int) -> None:
        self.eval_samples += int(samples)
        self.eval_passes += 1

    # --- what the run reports --------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """results.json's `throughput` block."""
        train_s, eval_s = self.inclusive.get("train", 0.0), self.inclusive.get("evaluation", 0.0)
        block: dict[str, Any] = {
            "scope": SCOPE,
            "train": {
                "epochs": self.train_epochs,
                "samples": self.train_samples,
                "seconds": round(train_s, 4),
                "samples_per_s": _rate(self.train_samples, train_s),
            },
            "evaluation": {
                "passes": self.eval_passes,
                "samples": self.eval_samples,
                "seconds": round(eval_s, 4),
                "samples_per_s": _rate(self.eval_samples, eval_s),
            },
            "timing": "wall clock of whole epochs and evaluations, which end in a host sync; none added to the step",
        }
        if not self.train_epochs:
            block["flops"] = None
            block["flops_not_counted"] = "no training steps"
            return block
        if not self.count_flops or not self.flops:
            block["flops"] = None
            block["flops_not_counted"] = self.flops_problem or (
                "FLOP counting off" if not self.count_flops else "no counted ops in the step"
            )
            return block
        achieved = self.flops / train_s if train_s > 0 else None
        peak = matmul_peak(self.device, _probe_dtype(self.device, self.precision))
        block["flops"] = {
            "total": self.flops,
            "per_sample": round(self.flops / max(self.train_samples, 1)),
            "per_s": achieved,
            "counted": FLOPS_COUNTED,
        }
        block["peak"] = peak
        block["fraction_of_peak"] = achieved / peak["flops_per_s"] if achieved and peak.get("flops_per_s") else None
        return block

    def profile_record(self) -> dict[str, Any]:
        """profile.json: each phase's exclusive seconds, share of the fit's wall time and calls."""
        total = time.perf_counter() - self.started
        phases = {
            name: {"seconds": round(seconds, 4), "fraction": round(seconds / total, 4) if total else None, "calls": self.calls[name]}
            for name, seconds in sorted(self.exclusive.items(), key=lambda kv: -kv[1])
        }
        untimed = total - sum(self.exclusive.values())
        return {
            "total_s": round(total, 4),
            "phases": phases,
            "untimed": {"seconds": round(untimed, 4), "fraction": round(untimed / total, 4) if total else None},
            "how": "wall clock, exclusive (a phase's nested phases taken out); 'train' is the epoch's own loop work "
            "(shuffling, loss sums, the epoch's host sync); on CUDA synchronised at every phase boundary",
        }


def epoch_samples(n_samples: int, batch_size: int, drop_last: bool, repeats: int, unlabeled_batches: int) -> int:
    """Samples an epoch's steps see: each labelled batch `repeats` times, plus the unlabeled batches."""
    labelled = (n_samples // batch_size) * batch_size if drop_last else n_samples
    return labelled * repeats + unlabeled_batches * batch_size


def _rate(count: float, seconds: float) -> float | None:
    return round(count / seconds, 3) if seconds > 0 and count else None


def _probe_dtype(device: torch.device, precision: str) -> torch.dtype:
    """The dtype whose peak the run is measured against: bf16 on CUDA (what MFU figures use) and
    for bf16 runs; float32 otherwise."""
    return torch.bfloat16 if device.type == "cuda" or precision == "bf16" else torch.float32


def matmul_peak(device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """The best FLOP/s of square matmuls on `device` in `dtype`, measured once per process for
    (device, dtype, threads) and cached: one warm-up matmul, then matmuls for PEAK_SECONDS.
    No random draws (the inputs are constants) and outside any run's timed phases."""
    threads = torch.get_num_threads()
    key = (str(device), str(dtype), threads)
    if key not in _PEAKS:
        _PEAKS[key] = _measure_peak(device, dtype, threads)
    return _PEAKS[key]


def _measure_peak(device: torch.device, dtype: torch.dtype, threads: int) -> dict[str, Any]:
    n = PEAK_SIZE.get(device.type, 1024)
    cuda = device.type == "cuda"
    a = torch.full((n, n), 0.5, device=device, dtype=dtype)
    b = torch.full((n, n), 0.25, device=device, dtype=dtype)
    per_call = 10 if cuda else 1  # one timing of several matmuls on a GPU: a launch is microseconds

    def timed() -> float:
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(per_call):
            torch.mm(a, b)
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    timed()  # warm-up: kernel selection, first touch of the memory
    best, spent, runs = math.inf, 0.0, 0
    while runs == 0 or spent < PEAK_SECONDS:  # a device slow at this dtype: one timing suffices
        seconds = timed()
        best, spent, runs = min(best, seconds), spent + seconds, runs + 1
    flops = 2 * n**3 * per_call
    return {
        "flops_per_s": flops / best,
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "threads": threads if not cuda else None,
        "how": f"best of {runs} timings of {per_call} {n}x{n} matmul(s), measured in this process",
    }


def throughput_text(block: dict[str, Any] | None) -> str:
    """The run's last line's figure: `1,234 samples/s, 3.1 GFLOP/s = 12% of peak` (training);
    empty for a run without training steps or a results.json written before the block existed."""
    if not block or not block.get("train", {}).get("samples_per_s"):
        return ""
    text = f"{block['train']['samples_per_s']:,.0f} samples/s"
    flops = block.get("flops") or {}
    if flops.get("per_s"):
        text += f", {_si(flops['per_s'])}FLOP/s"
        if block.get("fraction_of_peak") is not None:
            text += f" = {block['fraction_of_peak']:.0%} of peak"
    return text


def _si(value: float) -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}"
    return f"{value:.3g} "
