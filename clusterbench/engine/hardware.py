"""Device and precision from the `hardware` config group."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Literal

import torch

from clusterbench.errors import ConfigError
from clusterbench.threads import spins_long, wait_policy

JOB_DEVICE_ENV = "CLUSTERBENCH_JOB_DEVICE"


def set_deterministic(mode: bool, compiling: bool) -> None:
    """torch's deterministic-algorithms flag, set both ways (it is global and outlives a run in
    the same process). torch.use_deterministic_algorithms also sets the compiler's flag, and
    importing the compiler for it costs 2-3 s of every process's start; without torch.compile
    (nor the compiler already loaded) only the kernels' flag is set, which is all eager mode reads."""
    compiler_loaded = "torch._inductor.config" in sys.modules
    if compiling or compiler_loaded or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(mode)
    elif torch.are_deterministic_algorithms_enabled() != mode:
        torch._C._set_deterministic_algorithms(mode)
    keep_uninitialized_memory()


def keep_uninitialized_memory() -> None:
    """Under deterministic algorithms torch also fills every new tensor (torch.empty, the
    outputs of convolutions, batch norm, clone) with NaN, a debugging aid that catches kernels
    reading memory they did not write. No kernel used here does (a run's predictions are the same
    bit for bit without the fill, tests/test_engine.py), and the fill costs up to 10% of a CNN
    preset's epoch on a CPU (docs/benchmark.md, "Where the time goes"), so it is turned off."""
    deterministic = getattr(torch.utils, "deterministic", None)
    if deterministic is not None and hasattr(deterministic, "fill_uninitialized_memory"):
        deterministic.fill_uninitialized_memory = False


class Hardware:
    """Resolves `device` (auto | cpu | cuda | cuda:N) and `precision` (auto | fp32 | bf16)."""

    def __init__(
        self,
        device: str = "auto",
        precision: Literal["auto", "fp32", "bf16"] = "auto",
        deterministic: bool = False,
        num_threads: int | None = None,
        channels_last: bool = False,
        compile: bool = False,
        distributed: bool = False,
        backend: str = "auto",
        sync_batchnorm: bool = False,
        cpu_bf16: bool = False,
    ) -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and os.environ.get(JOB_DEVICE_ENV):
            # the GPU a multirun job holds (+launcher=local_gpus, engine/launch.py); kept out of
            # the config so that the job's config hash does not depend on which GPU it got
            device = os.environ[JOB_DEVICE_ENV]
        if distributed and device == "cuda":
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"  # one GPU per torchrun process
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"hardware.device={device}: no CUDA device is available here (use hardware=cpu or hardware=auto)")
        try:
            self.device = torch.device(device)
        except RuntimeError as err:
            raise ConfigError(f"hardware.device={device}: {err}") from None
        # a preset whose step was measured faster in bf16 on a CPU with native bf16 sets cpu_bf16
        # (docs/benchmark.md); `auto` then uses it where the CPU has native bf16
        self.cpu_bf16 = bool(cpu_bf16)
        self.auto_precision = precision == "auto"
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" or (self.cpu_bf16 and native_cpu_bf16()) else "fp32"
        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"hardware.precision={precision}: expected auto, fp32 or bf16")
        self.precision = precision
        self.deterministic = deterministic
        self.num_threads = num_threads
        # NHWC weights and image batches: faster convolutions on tensor cores (bf16)
        self.channels_last = channels_last
        # torch.compile the method's training step (the first steps pay the compile time)
        self.compile = compile
        # DDP (hardware=ddp, under torchrun): one process per device, global-batch losses
        # (engine/distributed.py); `backend` auto is gloo on CPU and nccl on CUDA
        self.distributed = distributed
        self.backend = backend
        # BatchNorm statistics over the global batch (CUDA only: torch's SyncBatchNorm has no CPU kernel)
        self.sync_batchnorm = sync_batchnorm

    def setup(self) -> None:
        """Applies global settings; call once before building the model."""
        if self.distributed:
            import torch.distributed as dist

            from clusterbench.engine.distributed import init_from_env

            if not dist.is_initialized():
                if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
                    raise ConfigError(
                        "hardware=ddp: start the run with torchrun, e.g. torchrun --nproc_per_node=2 -m clusterbench.train hardware=ddp ..."
                    )
                init_from_env(self.backend)
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        if self.deterministic:
            # cuBLAS needs this for deterministic matmuls on GPU
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False
        set_deterministic(self.deterministic, self.compile)
        if not self.deterministic and self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    def maybe_compile(self, fn):
        """`fn` (a training step: a dict of terms with "loss") compiled with torch.compile when
        `compile` is set, else `fn` itself."""
        if not self.compile:
            return fn
        return compile_step(fn)

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def precision_reason(self) -> str:
        """Why a CPU run uses its precision: asked for, or what `auto` chose and why."""
        if not self.auto_precision:
            return "hardware.precision"
        if not self.cpu_bf16:
            return "auto: fp32 (the preset's step is not faster in bf16 on a CPU, or was not measured)"
        if native_cpu_bf16():
            return "auto: bf16 (native bf16 on this CPU; the preset's step is faster in it)"
        return "auto: fp32 (no native bf16 on this CPU)"

    def threads_text(self) -> str:
        """How many CPU threads the run uses, with a note when its OpenMP threads spin long (slow
        when other processes share the cores: clusterbench/threads.py)."""
        threads = torch.get_num_threads()
        text = f"{threads} thread{'s' if threads != 1 else ''}"
        if threads > 1 and spins_long():
            text += f" (OpenMP wait: {wait_policy()})"
        return text

    def describe(self) -> dict:
        info = {
            "device": str(self.device),
            "precision": self.precision,
            "deterministic": self.deterministic,
            "channels_last": self.channels_last,
            "compile": self.compile,
        }
        if self.distributed:
            from clusterbench.engine.distributed import world_size

            info.update({"distributed": True, "world_size": world_size(), "sync_batchnorm": self.sync_batchnorm})
        if self.device.type == "cpu":
            info.update({"num_threads": torch.get_num_threads(), "omp_wait_policy": wait_policy()})
            info.update({"native_bf16": native_cpu_bf16(), "precision_chosen_by": self.precision_reason()})
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        from clusterbench.engine.provenance import device_record

        info.update(device_record(self.device))
        return info


def native_cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (x86 AVX512-BF16 or AMX): where bf16 autocast pays.
    Without them oneDNN emulates bf16 and it is slower than float32."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and bool(check()) for check in checks)


def compile_step(step):
    """torch.compile of a training step whose logged terms leave the compiled region stacked in
    one new tensor. Returned as they are, a stage with one term ({"loss": 1.0 * t, "t":
    t.detach()}, PICI's pre-training) lost the loss's gradient under inductor (torch 2.14: it
    folds `1.0 * t` into t and the detached copy into the same tensor, and marking that copy
    non-differentiable marks the loss too; pytorch/pytorch PR 195357)."""

    def split(*args, **kwargs):
        terms = step(*args, **kwargs)
        names = tuple(name for name in terms if name != "loss")
        # broadcast: an ensemble's terms are (members,), a stage's unused term may be a scalar 0
        logged = torch.stack(torch.broadcast_tensors(*(terms[name] for name in names))) if names else None
        return terms["loss"], names, logged

    compiled = torch.compile(split)

    def compiled_step(*args, **kwargs):
        loss, names, logged = compiled(*args, **kwargs)
        return {"loss": loss, **dict(zip(names, logged.unbind(0) if names else ()))}

    return compiled_step
