"""Pure loss functions (torch) used by the clustering methods."""

from .bootstrap import bootstrap_loss
from .contrastive import cluster_contrastive_loss, instance_contrastive_loss, nt_xent
from .dcsm import (
    DCSM_TABLE2,
    cluster_entropy_loss,
    cluster_standard_weights,
    dcsm_objective,
    dt_loss,
    ft_loss,
    jsd_mi_loss,
    label_features,
    local_mi_jsd,
    mi_pair_masks,
    similarity_targets,
    threshold_similarity_targets,
)
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
    "DCSM_TABLE2",
    "label_features",
    "similarity_targets",
    "threshold_similarity_targets",
    "dt_loss",
    "cluster_standard_weights",
    "ft_loss",
    "mi_pair_masks",
    "jsd_mi_loss",
    "local_mi_jsd",
    "cluster_entropy_loss",
    "dcsm_objective",
]
