"""clusterbench: deep clustering methods through one engine, one set of metrics and one run
folder per run. `python -m clusterbench` lists the commands and configs; `clusterbench.cluster`
is the one-call Python API (clusterbench/api.py) and `clusterbench.Clusterer` the scikit-learn
estimator (clusterbench/estimator.py)."""

__version__ = "0.1.0"

__all__ = ["cluster", "ClusterResult", "Clusterer", "__version__"]


def __getattr__(name: str):
    # imported on first use: `import clusterbench` (and the command line) stays light
    if name in ("cluster", "ClusterResult"):
        from clusterbench import api

        return getattr(api, name)
    if name == "Clusterer":
        from clusterbench.estimator import Clusterer

        return Clusterer
    raise AttributeError(f"module 'clusterbench' has no attribute {name!r}")
