"""Hydra launcher `vectorized`: a multirun's jobs trained as batched ensembles in one process.

Hydra only loads launchers from the `hydra_plugins` namespace package; the work is done by
clusterbench.engine.ensemble and clusterbench.train. Selected with `+launcher=vectorized`
(configs/launcher/vectorized.yaml).
"""

from dataclasses import dataclass
from typing import Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher


@dataclass
class VectorizedLauncherConf:
    _target_: str = "hydra_plugins.clusterbench_vectorized.vectorized_launcher.VectorizedLauncher"
    # the most members one batched model holds (None: a whole group, split further when its
    # weights, gradients and optimiser moments would not fit in the free memory)
    max_members: Optional[int] = None


ConfigStore.instance().store(group="hydra/launcher", name="vectorized", node=VectorizedLauncherConf, provider="clusterbench")


class VectorizedLauncher(Launcher):
    def __init__(self, max_members: Optional[int] = None) -> None:
        super().__init__()
        self.max_members = max_members
        self.config = None
        self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config = config
        self.hydra_context = hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
        from clusterbench.engine.ensemble import launch_vectorized
        from clusterbench.train import prepare_job, train_group

        return launch_vectorized(
            self.hydra_context, self.config, job_overrides, initial_job_idx, prepare_job, train_group, self.max_members
        )
