"""CPU threads that degrade gracefully when the cores are shared.

torch's intra-op threads are OpenMP threads. Between parallel regions GNU OpenMP (libgomp, what
torch's Linux wheels use) spins a waiting thread for up to 300,000 iterations before it sleeps.
When another process holds one of the cores, the spinning threads wait for a thread that is not
running: on 2 cores beside one busy process the default SDCIB job took 11.5x its idle time. A
short spin keeps the idle speed and lets a waiting thread give its core away soon
(docs/reliability.md, "Threads on a busy machine", has the measurements).

Torch-free on purpose: libgomp reads its settings once, when it loads (with torch), so the command
line calls prefer_short_spin() before anything imports torch. A user's own OMP_WAIT_POLICY or
GOMP_SPINCOUNT is kept; other OpenMP runtimes (LLVM's libomp, Intel's) are left as they are.
"""

from __future__ import annotations

import os
import sys

SPIN_ENV = "GOMP_SPINCOUNT"
POLICY_ENV = "OMP_WAIT_POLICY"
# iterations a waiting libgomp thread spins before it sleeps; 10,000 kept the idle time of the
# default job (1.0x) and its time beside one / two busy processes at 2.4x / 3.0x of idle, where
# libgomp's default took 11.5x / 5.1x
SHORT_SPIN = "10000"


def prefer_short_spin() -> None:
    """GOMP_SPINCOUNT=SHORT_SPIN unless the user chose a wait policy or spin count, or torch (and
    its OpenMP runtime) is loaded already, when setting it would only make the record lie."""
    if "torch" in sys.modules or POLICY_ENV in os.environ:
        return
    os.environ.setdefault(SPIN_ENV, SHORT_SPIN)


def wait_policy() -> str:
    """How this process's OpenMP threads wait, as its environment sets it."""
    policy, spin = os.environ.get(POLICY_ENV, "").upper(), os.environ.get(SPIN_ENV)
    if policy:
        return f"OMP_WAIT_POLICY={policy}" + (f" GOMP_SPINCOUNT={spin}" if spin else "")
    return f"GOMP_SPINCOUNT={spin}" if spin else "default (spin 300000)"


def spins_long() -> bool:
    """Whether waiting threads spin for libgomp's default count (slow when the cores are shared):
    neither the passive policy nor a spin count is set."""
    return os.environ.get(POLICY_ENV, "").upper() != "PASSIVE" and not os.environ.get(SPIN_ENV)
