"""Pure loss functions (torch) used by the clustering methods."""

from .bootstrap import bootstrap_loss
from .contrastive import cluster_contrastive_loss, instance_contrastive_loss, nt_xent
from .entropy import entropy, marginal_entropy, mean_entropy
from .information import (
    gaussian_kl_to_standard_normal,
    jsd_mine_term,
    mine_lower_bound,
    shuffle_pairs,
    softmax_kl_term,
)

__all__ = [
    "bootstrap_loss",
    "instance_contrastive_loss",
    "cluster_contrastive_loss",
    "nt_xent",
    "entropy",
    "marginal_entropy",
    "mean_entropy",
    "gaussian_kl_to_standard_normal",
    "mine_lower_bound",
    "jsd_mine_term",
    "shuffle_pairs",
    "softmax_kl_term",
]
