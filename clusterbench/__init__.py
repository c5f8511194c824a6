"""clusterbench: deep clustering methods through one engine, one set of metrics and one run
folder per run. `python -m clusterbench` lists the commands and configs; `clusterbench.cluster`
is the Python API (clusterbench/api.py)."""
__version__ = "0.1.0"

__all__ = ["cluster", "ClusterResult", "__version__"]


def __getattr__(name: str):
    # imported on first use: `import clusterbench` (and the command line) stays light
    if name in ("cluster", "ClusterResult"):
        from clusterbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'clusterbench' has no attribute {name!r}")
