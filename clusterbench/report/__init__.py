"""`python -m clusterbench.report <run or multirun folders>`: tables, paper numbers and figures.

Every run folder under the given folders (one with .hydra/config.yaml) is read. Finished runs
are grouped by (model, dataset, overrides other than the seed and settings that do not change
results, e.g. paths.*, trainer.progress, hardware.num_threads); each group is one row with
ACC, NMI and ARI as mean ± std over its runs (n), or with `--aggregate max` the maximum over
runs of each metric taken separately (how SDCIB's paper reports; this chooses with the labels
and every such number is flagged †). Rows whose runs picked their epoch with the labels
(results.json selection.uses_labels) are flagged † too and are never ranked against label-free
rows. The best and second-best value per dataset and metric are marked (bold / underlined).
Failed and unfinished runs are listed under the table, with their error line. Runs with the
same config hash and seed (the same command run twice) count once: the one whose results.json
was written last; the others are listed under the table as superseded.

Exit status: 0 when the table is printed and every run folder could be read (failed and
unfinished runs are listed, not errors); 2 for bad input: no run folders, an unknown reference,
or a damaged run folder (results.json unreadable, not a JSON object, or a metric that is not a
number: one `error: <folder>: <why>` line each on stderr, and the table of the other runs is
still printed); 2 also when an output file cannot be written.

`--reference auto` (default) adds the paper's number and the difference (obtained - paper) to
every row that a reference in clusterbench/reference/ maps to (e.g. sdcib_icml2025: SDCIB
Tables 2-5); `--reference NAME|PATH.yaml` uses one reference, `--reference none` none.

`--format md|csv|latex` chooses what is printed; `--out DIR` writes table.md, table.csv,
table.tex and the figures to DIR; `--figures DIR` writes only the figures. Figures (PNG) and
the files they read from each run folder:

- alpha_beta_<model>.png: SDCIB Fig. 2 style bars of ACC and NMI over the (model.alpha,
  model.beta) pairs in .hydra/config.yaml, per dataset (drawn when >= 2 pairs are present);
- curves_<group>.png: metrics.csv (loss, named loss terms, ACC/NMI/ARI and the collapse
  monitor per epoch), mean over seeds with a ± std band;
- confusion_<group>.png: predictions.npz (y_true, y_pred), true class vs predicted cluster
  after Hungarian matching, summed over the group's runs;
- tsne_<group>.png: embedding.npz, a NumPy .npz with `features` (float array N x d, one row per
  sample in dataset order, the representation the clusters were read from) and optionally
  `y_pred` (N cluster indices; predictions.npz's y_pred is used otherwise). The first run of the
  group (lowest seed) that has the file is drawn, subsampled to 2000 points. Runs without it
  are reported as having saved no representation.

See docs/report.md.
"""

from clusterbench.report.cli import main
from clusterbench.report.reference import Reference, available_references, load_reference
from clusterbench.report.runs import Group, Run, Unfinished, find_runs, summarize
from clusterbench.report.tables import Table, build_table, to_csv, to_latex, to_markdown

__all__ = [
    "Group",
    "Reference",
    "Run",
    "Table",
    "Unfinished",
    "available_references",
    "build_table",
    "find_runs",
    "load_reference",
    "main",
    "summarize",
    "to_csv",
    "to_latex",
    "to_markdown",
]
