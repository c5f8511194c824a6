"""report --pivot: methods x datasets, floors, paper rows, label-selected cells, formats, bars;
and the table fixes: amkm = kmeans as one row, n = 1 without "± 0", purity shown.

Run folders are written by hand (results.json, .hydra/config.yaml), no training.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
import yaml

from clusterbench.report import find_runs, main, summarize
from clusterbench.report.reference import resolve_references
from clusterbench.report.tables import build_pivot, build_table, pivot_to_csv, pivot_to_markdown, to_markdown

KMEANS = {"model": {"_target_": "clusterbench.methods.kmeans.KMeans", "view": None, "n_init": 10}}
CC = {"model": {"_target_": "clusterbench.methods.cc.ContrastiveClustering"}}


def _run(root, name, model, dataset, seed, acc, config=None, overrides=(), uses_labels=False, purity=None):
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "paths": {"log_dir": f"/x/{name}"}, **(config or {})}))
    metrics = {"acc": acc, "nmi": acc / 2, "ari": acc / 4}
    if purity is not None:
        metrics["purity"] = purity
    (run / "results.json").write_text(
        json.dumps(
            {
                "status": "finished",
                "model": model,
                "seed": seed,
                "dataset": {"name": dataset},
                "overrides": [f"seed={seed}", f"model={model}", f"dataset={dataset}", *overrides],
                "selection": {"rule": "best_acc" if uses_labels else "last", "epoch": 1, "uses_labels": uses_labels},
                "metrics": metrics,
            }
        )
    )


def _pivot(tmp_path, reference="none", metrics=("acc", "nmi", "ari")):
    groups, unfinished = summarize(find_runs([tmp_path]))
    return build_pivot(groups, unfinished, references=resolve_references(reference), metrics=metrics)


def _lines(markdown, block="ACC"):
    text = markdown.split(f"**{block}**", 1)[1].split("\n\n", 2)[1]
    return {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ") and "---" not in line}


def test_pivot_rows_columns_floor_best_and_marks(tmp_path):
    _run(tmp_path, "k0", "kmeans", "digits", 0, 0.70, KMEANS)
    _run(tmp_path, "k1", "kmeans", "digits", 1, 0.80, KMEANS)
    _run(tmp_path, "k2", "kmeans", "mnist", 0, 0.55, KMEANS)
    _run(tmp_path, "c0", "cc", "digits", 0, 0.60, CC)
    _run(tmp_path, "c1", "cc", "mnist", 0, 0.85, CC, overrides=("+experiment=cc_mnist",))
    _run(tmp_path, "s0", "km", "digits", 0, 0.95, {"model": {"per_view": True}}, uses_labels=True)
    pivot = _pivot(tmp_path)
    assert pivot.datasets == ["digits", "mnist"]
    # floor first, then classic, then methods; the MNIST preset is the same `cc` row
    assert [row.label for row in pivot.rows] == ["kmeans", "km", "cc"]
    md = pivot_to_markdown(pivot)
    acc = _lines(md)
    assert acc["kmeans"] == "| kmeans | **0.750 ± 0.071 (2)** | 0.550 (1) |"  # n = 1: no "± 0"
    # cc: below the floor on digits, best on MNIST; km chose its view with labels: marked, never bold
    assert acc["cc"] == "| cc | 0.600 (1) ↓ | **0.850 (1)** |"
    assert acc["km"] == "| km | 0.950 (1) † | - |"
    assert "± 0.000" not in md and "**NMI**" in md and "**ARI**" in md
    assert "label-selected" in md and "below the k-means floor" in md


def test_pivot_paper_rows_and_differences(tmp_path):
    # SDCIB Table 2 on Event: AmKM 28.7 / 11.6; kmeans on the concatenated views is AmKM
    _run(tmp_path, "k0", "kmeans", "event", 0, 0.30, KMEANS)
    _run(tmp_path, "k1", "kmeans", "event", 1, 0.32, KMEANS)
    pivot = _pivot(tmp_path, reference="sdcib_icml2025")
    assert [row.kind for row in pivot.rows] == ["floor", "paper"]
    acc = _lines(pivot_to_markdown(pivot))
    assert acc["*kmeans, paper*"] == "| *kmeans, paper* | 0.287 (Δ +0.023) |"
    rows = list(csv.DictReader(io.StringIO(pivot_to_csv(pivot))))
    paper = next(r for r in rows if r["kind"] == "paper" and r["metric"] == "nmi")
    assert (paper["value"], paper["paper_method"], paper["paper_table"]) == ("0.116", "AmKM", "2")
    assert abs(float(paper["diff"]) - (0.155 - 0.116)) < 1e-6
    assert not any(r["kind"] == "paper" for r in rows if r["metric"] == "ari")  # the paper has no ARI


def test_pivot_metric_switch_formats_and_figures(tmp_path, capsys):
    runs = tmp_path / "runs"
    _run(runs, "k0", "kmeans", "digits", 0, 0.7, KMEANS, purity=0.72)
    _run(runs, "c0", "cc", "digits", 0, 0.6, CC, purity=0.61)
    out = tmp_path / "out"
    assert main([str(runs), "--pivot", "--metric", "purity", "--out", str(out), "--reference", "none"]) == 0
    printed = capsys.readouterr().out
    assert "**Purity**" in printed and "**ACC**" not in printed and "| kmeans | **0.720 (1)** |" in printed
    assert {p.name for p in out.iterdir()} == {"pivot.md", "pivot.csv", "pivot.tex", "bars_purity.png", "bars_purity.pdf"}
    assert (out / "bars_purity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    latex = (out / "pivot.tex").read_text()
    assert r"\textbf{0.720 (1)}" in latex and r"\multicolumn{2}{l}{\textit{Purity}}" in latex
    assert main([str(runs), "--pivot", "--format", "csv", "--metric", "acc"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("metric,method,kind,dataset,value,std,n") and len(lines) == 3


def test_pivot_unknown_metric_is_rejected(tmp_path, capsys):
    _run(tmp_path, "k0", "kmeans", "digits", 0, 0.7, KMEANS)
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--pivot", "--metric", "f1"])
    assert exit_.value.code == 2
    assert "unknown metric(s) f1" in capsys.readouterr().err


def test_amkm_and_kmeans_are_one_row_and_seeds_are_not_counted_twice(tmp_path):
    _run(tmp_path, "a0", "amkm", "handwritten", 0, 0.8, KMEANS)
    _run(tmp_path, "k0", "kmeans", "handwritten", 0, 0.8, KMEANS)  # the same computation again
    _run(tmp_path, "k1", "kmeans", "handwritten", 1, 0.9, KMEANS)
    _run(tmp_path, "v0", "kmeans", "handwritten", 0, 0.5, {"model": {**KMEANS["model"], "view": 2}}, overrides=("model.view=2",))
    groups, _ = summarize(find_runs([tmp_path]))
    labels = sorted(group.label for group in groups.values())
    assert labels == ["kmeans", "kmeans = amkm"]
    merged = next(g for g in groups.values() if g.aliases)
    assert sorted(run.seed for run in merged.runs) == [0, 1] and len(merged.duplicates) == 1
    md = to_markdown(build_table(groups))
    assert "| kmeans = amkm | handwritten | - | 2 | 0,1 |" in md
    assert "not counted again" in md


def test_table_shows_purity_and_one_run_without_spread(tmp_path):
    _run(tmp_path, "k0", "kmeans", "digits", 0, 0.7, KMEANS, purity=0.75)
    md = to_markdown(build_table(*summarize(find_runs([tmp_path]))))
    assert md.splitlines()[0].endswith("| ACC | NMI | ARI | Purity |")
    assert "| 0.7000 | 0.3500 | 0.1750 | 0.7500 |" in md and "±" not in md.split("\n\n")[0]


# --------------------------------------------------------------------------- reference numbers


@pytest.fixture
def shared_papers():
    """../shared/papers (or CLUSTERBENCH_SHARED_PAPERS); the test skips where it is absent."""
    folder = Path(os.environ.get("CLUSTERBENCH_SHARED_PAPERS", Path(__file__).resolve().parents[2] / "shared" / "papers"))
    if not folder.is_dir():
        pytest.skip(f"no paper texts at {folder}")
    return folder


PAPERS = {
    "htcn": "htcn.txt",
    "pici": "pici.txt",
    "mfavbs_cc": "mfavbs_cc.txt",
    "dcsm_applsci2023": "dcsm_applsci2023.txt",
    "sdcib_icml2025": "sdcib_icml2025.txt",
}


def test_every_reference_loads_and_maps_runs():
    from clusterbench.report.reference import available_references, load_reference

    assert {"cc_aaai2021", "htcn", "pici", "mfavbs_cc", "dcsm_applsci2023", "sdcib_icml2025"} <= set(available_references())
    for name in available_references():
        reference = load_reference(name)
        assert reference.values and reference.rules and reference.datasets


def test_reference_values_are_in_the_paper_texts(shared_papers):
    """Each transcribed number appears in its paper's text (CC's, quoted by HTCN and MFAVBs-CC, in theirs)."""
    from importlib import resources

    folder = resources.files("clusterbench.reference")
    for name, paper in {**PAPERS, "cc_aaai2021": None}.items():
        texts = [(shared_papers / p).read_text() for p in ([paper] if paper else ["htcn.txt", "mfavbs_cc.txt"])]
        rows = list(csv.DictReader(io.StringIO(folder.joinpath(f"{name}.csv").read_text())))
        # CC's fractions appear in HTCN's tables as percentages
        forms = lambda value: (value, f"{float(value) * 100:.1f}")  # noqa: E731
        missing = [r for r in rows if not any(form in text for text in texts for form in forms(r["value"]))]
        assert not missing, (name, missing[:3])
    # CC's numbers in HTCN's percent tables
    htcn = (shared_papers / "htcn.txt").read_text()
    assert "CC [14]\t43.1\t85.9\t44.5\t34.0" in htcn and "CC [14]\t42.9\t89.3\t42.9\t14.0" in htcn


def test_paper_rows_for_cc_vtcc_mfavbs(tmp_path):
    vtcc = {"model": {"_target_": "clusterbench.methods.vtcc.VTCC"}}
    mfavbs = {"model": {"_target_": "clusterbench.methods.mfavbs.MFAVBsCC", "clip": "none", "fusion": "token"}}
    _run(tmp_path, "v", "vtcc", "rsod", 0, 0.5, vtcc)
    _run(tmp_path, "m", "mfavbs", "rsod", 0, 0.6, mfavbs, overrides=("model.clip=none",))
    _run(tmp_path, "c", "cc", "cifar10", 0, 0.7, CC)
    pivot = _pivot(tmp_path, reference="auto")
    papers = {row.of: row.papers for row in pivot.rows if row.kind == "paper"}
    assert papers["vtcc"]["rsod"].method == "VTCC" and papers["vtcc"]["rsod"].values["acc"] == 0.572
    assert papers["mfavbs model.clip=none"]["rsod"].method == "MethodA"
    assert papers["cc"]["cifar10"].reference.name == "cc_aaai2021" and papers["cc"]["cifar10"].values["acc"] == 0.79


def test_runs_without_labels_show_their_label_free_scores(tmp_path, capsys):
    for seed, (sil, ch) in enumerate([(0.40, 800.0), (0.50, 900.0)]):
        run = tmp_path / f"u{seed}"
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed, **KMEANS}))
        (run / "results.json").write_text(
            json.dumps(
                {
                    "status": "finished",
                    "model": "kmeans",
                    "seed": seed,
                    "dataset": {"name": "mine", "has_labels": False},
                    "overrides": [f"seed={seed}", "model=kmeans", "dataset=features"],
                    "selection": {"rule": "last", "epoch": 0, "uses_labels": False},
                    "metrics": {"silhouette": sil, "calinski_harabasz": ch, "nonempty_clusters": 3},
                }
            )
        )
    assert main([str(tmp_path), "--reference", "none"]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("| model"))
    assert "Silhouette" in header and "Calinski-Harabasz" in header
    assert "0.4500 ± 0.0707" in printed and "850.0000 ± 70.7107" in printed
