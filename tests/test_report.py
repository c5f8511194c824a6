"""report: tables (md / CSV / LaTeX), marks, flags, paper numbers, figures, unfinished runs, errors.

Run folders are written by hand (results.json, .hydra/config.yaml, metrics.csv, predictions.npz,
embedding.npz), no training.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict

import numpy as np
import pytest
import yaml

from clusterbench.report import build_table, find_runs, load_reference, main, summarize, to_csv, to_latex, to_markdown
from clusterbench.report.cli import FIGURE_KINDS
from clusterbench.report.figures import KINDS, matched_confusion

# the paper's SDCIB setting as .hydra/config.yaml holds it
SDCIB_CONFIG = {
    "seed": 0,
    "paths": {"log_dir": "${oc.env:X,.}"},
    "model": {"_target_": "clusterbench.methods.sdcib.SDCIB", "alpha": 0.1, "beta": 1.0},
    "backbone": {"hidden_dims": [1024, 1024, 1024, 128]},
    "loss": {"layers": "all", "weights": {"compression": 1.0, "relevance": 1.0, "instance": 1.0, "cluster": 1.0}},
}
KMEANS_CONFIG = {"seed": 0, "model": {"_target_": "clusterbench.methods.kmeans.KMeans", "view": None}}


def _config(base: dict, **dotted) -> dict:
    config = json.loads(json.dumps(base))
    for key, value in dotted.items():
        node = config
        *parents, last = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return config


def _run(
    root,
    name,
    seed,
    acc,
    status="finished",
    model="sdcib",
    overrides=(),
    dataset="handwritten",
    config=None,
    nmi=None,
    uses_labels=False,
    rule="last",
    error="non-finite loss at epoch 3",
):
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config or {"seed": seed}))
    if status is None:
        return run
    payload = {
        "status": status,
        "model": model,
        "method": "x",
        "seed": seed,
        "overrides": [f"seed={seed}", "paths.log_dir=/tmp/x", "trainer.progress=false", *overrides],
        "dataset": {"name": dataset},
        "selection": {"rule": rule, "epoch": 3, "uses_labels": uses_labels},
        "metrics": {"acc": acc, "nmi": acc / 2 if nmi is None else nmi, "ari": acc / 4},
        "baseline": {"unknown": "keys are ignored"},
    }
    if status != "finished":
        payload = {"status": status, "error": error, "model": model, "seed": seed}
    (run / "results.json").write_text(json.dumps(payload))
    return run


def _table(tmp_path, aggregate="mean", reference="none"):
    from clusterbench.report.reference import resolve_references

    groups, unfinished = summarize(find_runs([tmp_path]))
    return build_table(groups, unfinished, aggregate=aggregate, references=resolve_references(reference))


def _csv_rows(text):
    return {(r["model"], r["overrides"]): r for r in csv.DictReader(io.StringIO(text))}


# --------------------------------------------------------------------------- tables


def test_mean_std_ranks_in_markdown_and_unfinished_listed(tmp_path, capsys):
    _run(tmp_path, "0", 0, 0.5)
    _run(tmp_path, "1", 1, 0.7)
    _run(tmp_path, "2", 0, 0.9, model="kmeans")
    _run(tmp_path, "3", 2, 0.1, status="failed", error="non-finite loss at epoch 3\nTraceback: more")
    _run(tmp_path, "4", 3, 0.1, status=None)
    _run(tmp_path, "5", 0, 0.3, overrides=("model.alpha=0.2",))
    table = to_markdown(_table(tmp_path))
    assert "| kmeans | handwritten | - | 1 | 0 | last | **0.9000** | **0.4500** | **0.2250** |" in table
    assert (
        "| sdcib | handwritten | - | 2 | 0,1 | last | <u>0.6000 ± 0.1414</u> | <u>0.3000 ± 0.0707</u> | <u>0.1500 ± 0.0354</u> |" in table
    )
    assert "| sdcib | handwritten | model.alpha=0.2 | 1 | 0 | last | 0.3000 | 0.1500 | 0.0750 |" in table
    assert "Bold: best, underlined: second best" in table and "†" not in table
    # failed with its first error line only; no results.json said so
    assert f"- {tmp_path / '3'}: failed: non-finite loss at epoch 3\n" in table + "\n"
    assert "Traceback" not in table
    assert f"- {tmp_path / '4'}: no results.json (running, stopped or crashed)" in table
    assert main([str(tmp_path)]) == 0
    assert "<u>0.6000 ± 0.1414</u>" in capsys.readouterr().out


def test_csv_and_latex_values_and_marks(tmp_path, capsys):
    _run(tmp_path, "0", 0, 0.5)
    _run(tmp_path, "1", 1, 0.7)
    _run(tmp_path, "2", 0, 0.9, model="kmeans")
    _run(tmp_path, "3", 1, 0.8, model="kmeans")
    _run(tmp_path, "4", 0, 0.2, status="failed")
    table = _table(tmp_path)
    rows = _csv_rows(to_csv(table))
    assert set(rows) == {("sdcib", ""), ("kmeans", "")}
    sdcib, kmeans = rows[("sdcib", "")], rows[("kmeans", "")]
    assert (sdcib["acc"], sdcib["acc_std"], sdcib["acc_rank"], sdcib["n"], sdcib["seeds"]) == ("0.6", "0.141421", "2", "2", "0,1")
    assert (kmeans["acc"], kmeans["acc_std"], kmeans["acc_rank"]) == ("0.85", "0.070711", "1")
    assert (kmeans["nmi"], kmeans["ari"], kmeans["label_selected"], kmeans["aggregate"]) == ("0.425", "0.2125", "false", "mean")
    latex = to_latex(table)
    assert (
        r"kmeans & handwritten & - & 2 & last & \textbf{0.8500 $\pm$ 0.0707} & \textbf{0.4250 $\pm$ 0.0354} & \textbf{0.2125 $\pm$ 0.0177} \\"
        in latex
    )
    assert r"sdcib & handwritten & - & 2 & last & \underline{0.6000 $\pm$ 0.1414} &" in latex
    assert r"\begin{tabular}{lllrlccc}" in latex and r"\bottomrule" in latex
    assert f"% not finished: {tmp_path / '4'}: failed: non-finite loss at epoch 3" in latex
    # --format csv keeps stdout a clean CSV; the failed run goes to stderr
    assert main([str(tmp_path), "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith("model,dataset,overrides,n,seeds,selection,label_selected")
    assert "not finished" not in captured.out and f"not finished: {tmp_path / '4'}" in captured.err
    assert main([str(tmp_path), "--format", "latex"]) == 0
    assert r"\textbf{0.8500 $\pm$ 0.0707}" in capsys.readouterr().out


def test_ties_share_the_mark_and_single_rows_are_not_ranked(tmp_path):
    _run(tmp_path, "0", 0, 0.5, model="a")
    _run(tmp_path, "1", 0, 0.5, model="b")
    _run(tmp_path, "2", 0, 0.4, model="c")
    _run(tmp_path, "3", 0, 0.9, model="d", dataset="other")  # alone on its dataset
    rows = _csv_rows(to_csv(_table(tmp_path)))
    assert [rows[(m, "")]["acc_rank"] for m in "abcd"] == ["1", "1", "2", ""]
    md = to_markdown(_table(tmp_path))
    assert "| d | other | - | 1 | 0 | last | 0.9000 |" in md


def test_max_aggregation_is_flagged(tmp_path, capsys):
    _run(tmp_path, "0", 0, 0.5)
    _run(tmp_path, "1", 1, 0.7)
    assert main([str(tmp_path), "--aggregate", "max"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Metrics are the MAXIMUM over runs") and "label-selected" in out
    assert "| sdcib | handwritten | - | 2 | 0,1 | last | 0.7000 † | 0.3500 † | 0.1750 † |" in out
    assert "† label-selected" in out
    table = _table(tmp_path, aggregate="max")
    row = _csv_rows(to_csv(table))[("sdcib", "")]
    assert (row["acc"], row["acc_std"], row["label_selected"], row["aggregate"]) == ("0.7", "", "true", "max")
    latex = to_latex(table)
    assert r"0.7000$^\dagger$ & 0.3500$^\dagger$ & 0.1750$^\dagger$ \\" in latex
    assert latex.count("MAXIMUM over runs") == 1 and r"$^\dagger$ label-selected" in latex


def test_max_tables_say_their_ranking_compares_label_picked_maxima(tmp_path):
    _run(tmp_path, "0", 0, 0.5, model="a")
    _run(tmp_path, "1", 0, 0.6, model="b")
    maxima = "\n".join(_table(tmp_path, aggregate="max").notes())
    assert "Bold: best" in maxima and "each cell is a maximum over runs, picked with the labels" in maxima
    means = "\n".join(_table(tmp_path).notes())
    assert "Bold: best" in means and "maximum over runs, picked" not in means


def test_label_selected_runs_are_flagged_and_never_ranked(tmp_path):
    km = _run(tmp_path, "0", 0, 0.95, model="km", rule="last", uses_labels=True)
    results = json.loads((km / "results.json").read_text())
    results["selection"]["candidate"] = {"rule": "best_acc", "chosen": "view_3", "uses_labels": True}
    (km / "results.json").write_text(json.dumps(results))
    _run(tmp_path, "1", 0, 0.6, model="a")
    _run(tmp_path, "2", 0, 0.5, model="b")
    table = _table(tmp_path)
    md = to_markdown(table)
    assert "| km | handwritten | - | 1 | 0 | last + best_acc (label-selected) | 0.9500 † |" in md
    assert "| a | handwritten | - | 1 | 0 | last | **0.6000** |" in md
    assert "| b | handwritten | - | 1 | 0 | last | <u>0.5000</u> |" in md
    rows = _csv_rows(to_csv(table))
    assert (rows[("km", "")]["label_selected"], rows[("km", "")]["acc_rank"]) == ("true", "")
    assert r"0.9500$^\dagger$" in to_latex(table)


def test_settings_that_change_nothing_do_not_split_groups(tmp_path):
    _run(tmp_path, "0", 0, 0.5, overrides=("hardware.num_threads=1", "logger=csv"))
    _run(tmp_path, "1", 1, 0.7, overrides=("+launcher=local",))
    groups, _ = summarize(find_runs([tmp_path]))
    assert list(groups) == [("sdcib", "handwritten", "")]


# --------------------------------------------------------------------------- paper numbers


def test_reference_columns_and_differences(tmp_path, capsys):
    paper = SDCIB_CONFIG
    _run(tmp_path, "0", 0, 0.6, dataset="caltech2v", config=paper, nmi=0.5)
    _run(tmp_path, "1", 1, 0.7, dataset="caltech2v", config=paper, nmi=0.6)
    depth2 = _config(paper, backbone__hidden_dims=[1024, 128])
    _run(tmp_path, "2", 0, 0.5, dataset="event", config=depth2, nmi=0.3, overrides=("backbone.hidden_dims=[1024,128]",))
    no_cluster = _config(paper, loss__weights__cluster=0.0)
    _run(tmp_path, "3", 0, 0.3, dataset="iapr", config=no_cluster, nmi=0.2, overrides=("loss.weights.cluster=0",))
    no_hidden = _config(paper, loss__layers="last")
    _run(tmp_path, "4", 0, 0.55, dataset="esp", config=no_hidden, nmi=0.4, overrides=("loss.layers=last",))
    _run(tmp_path, "5", 0, 0.4, dataset="caltech2v", model="kmeans", config=KMEANS_CONFIG, nmi=0.3)
    _run(tmp_path, "6", 0, 0.5, dataset="caltech2v", config=_config(paper, model__alpha=0.2), overrides=("model.alpha=0.2",))
    _run(tmp_path, "7", 0, 0.5, dataset="handwritten", config=paper)
    assert main([str(tmp_path), "--reference", "sdcib_icml2025"]) == 0
    md = capsys.readouterr().out
    assert "| ACC | ACC paper | ΔACC | NMI | NMI paper | ΔNMI | ARI | paper row |" in md
    # mean 0.65 vs 67.5 %, mean 0.55 vs 59.2 %
    assert "0.6500 ± 0.0707** | 0.675 | -0.0250 | **0.5500 ± 0.0707** | 0.592 | -0.0420 |" in md
    assert "| Table 2: SDCIB |" in md
    assert "| 0.5000 | 0.501 | -0.0010 | 0.3000 | 0.303 | -0.0030 | 0.1250 | Table 3: SDCIB (2 layers) |" in md
    assert "| 0.385 | -0.0850 |" in md and "Table 4: SDCIB w/o I(Y;Y) |" in md
    assert "| 0.579 | -0.0290 |" in md and "Table 5: SDCIB-no-hidden |" in md
    assert "| 0.464 | -0.0640 |" in md and "Table 2: AmKM |" in md
    assert "Paper columns: Lou et al." in md and "MAXIMUM over 10 runs" in md and "Δ = obtained − paper" in md
    rows = _csv_rows(to_csv(_table(tmp_path, reference="sdcib_icml2025")))
    by_dataset = {
        (r["dataset"], r["model"], r["overrides"]): r for r in csv.DictReader(io.StringIO(to_csv(_table(tmp_path, reference="auto"))))
    }
    caltech = by_dataset[("caltech2v", "sdcib", "")]
    assert (caltech["acc_paper"], caltech["acc_diff"], caltech["nmi_paper"], caltech["nmi_diff"]) == ("0.675", "-0.025", "0.592", "-0.042")
    assert (caltech["paper_reference"], caltech["paper_table"], caltech["paper_method"]) == ("sdcib_icml2025", "2", "SDCIB")
    # not the paper's setting, or not the paper's dataset: no paper value
    other = rows[("sdcib", "model.alpha=0.2")]
    assert (other["acc_paper"], other["acc_diff"], other["paper_table"]) == ("", "", "")
    assert "ari_paper" not in other
    assert by_dataset[("handwritten", "sdcib", "")]["acc_paper"] == ""
    latex = to_latex(_table(tmp_path, reference="sdcib_icml2025"))
    assert r"& 0.675 & -0.0250 &" in latex and r"$\Delta$ACC" in latex


def test_reference_auto_none_and_unknown(tmp_path, capsys):
    _run(tmp_path, "0", 0, 0.6, dataset="caltech2v", config=SDCIB_CONFIG)
    assert main([str(tmp_path)]) == 0  # auto: the bundled reference maps this row
    assert "ACC paper" in capsys.readouterr().out
    assert main([str(tmp_path), "--reference", "none"]) == 0
    assert "paper" not in capsys.readouterr().out
    assert main([str(tmp_path), "--reference", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown reference 'nope'") and err.count("\n") == 1


def test_kmeans_rules_by_config():
    reference = load_reference("sdcib_icml2025")

    class FakeGroup:
        def __init__(self, model, config, dataset="esp"):
            self.model, self.config, self.dataset = model, config, dataset

    def method(model, model_config):
        row = reference.paper_row(FakeGroup(model, {"model": model_config}))
        return row and row.method

    assert method("kmeans", {"view": None}) == "AmKM"
    assert method("kmeans", {"view": None, "per_view": True}) == "KM"
    assert method("kmeans", {"view": 1}) == "KM"
    assert method("km", {}) == "KM" and method("amncuts", {}) == "AmNcuts" and method("ncuts", {}) == "Ncuts"
    assert method("sdcib", {"alpha": 0.1}) is None  # the rest of the paper setting is missing
    assert reference.paper_row(FakeGroup("km", {}, dataset="handwritten")) is None


TABLE2_METHODS = [
    "KM",
    "Ncuts",
    "AmKM",
    "AmNcuts",
    "CoregMVSC",
    "RMKMC",
    "SwMC",
    "ONMSC",
    "SiMVC",
    "CoMVC",
    "MFLVC",
    "DealMVC",
    "ICMVC",
    "DIVICE",
    "SDCIB",
]
DATASETS = ["Caltech-2V", "Event", "IAPR", "ESP"]


def _reference_values():
    from importlib import resources

    text = resources.files("clusterbench.reference").joinpath("sdcib_icml2025.csv").read_text()
    values = defaultdict(dict)
    for row in csv.DictReader(io.StringIO(text)):
        key = (row["table"], row["dataset"], row["method"], row["metric"])
        assert key not in values[row["table"]], f"duplicate {key}"
        values[row["table"]][key] = float(row["value"])
    return values


def test_reference_file_has_every_table2_entry():
    values = _reference_values()
    table2 = values["2"]
    assert set(table2) == {("2", d, m, metric) for d in DATASETS for m in TABLE2_METHODS for metric in ("ACC", "NMI")}
    assert all(0 <= v <= 100 for table in values.values() for v in table.values())
    # the paper's own checks: "Ours vs best compared" (Table 2, last row)
    improvements = {
        ("Caltech-2V", "ACC"): 3.4,
        ("Caltech-2V", "NMI"): 5.6,
        ("Event", "ACC"): 7.4,
        ("Event", "NMI"): 0.9,
        ("IAPR", "ACC"): 5.6,
        ("IAPR", "NMI"): 5.6,
        ("ESP", "ACC"): 9.3,
        ("ESP", "NMI"): 7.8,
    }
    for (dataset, metric), gain in improvements.items():
        best_other = max(table2[("2", dataset, m, metric)] for m in TABLE2_METHODS if m != "SDCIB")
        assert table2[("2", dataset, "SDCIB", metric)] - best_other == pytest.approx(gain)
    # Sec. 3.4: SDCIB's Caltech-2V ACC exceeds KM and Ncuts by 25.9 and 27.6; ESP NMI exceeds AmKM, AmNcuts by 24.0, 25.7
    assert 67.5 - table2[("2", "Caltech-2V", "KM", "ACC")] == pytest.approx(25.9)
    assert 67.5 - table2[("2", "Caltech-2V", "Ncuts", "ACC")] == pytest.approx(27.6)
    assert 44.7 - table2[("2", "ESP", "AmKM", "NMI")] == pytest.approx(24.0)
    assert 44.7 - table2[("2", "ESP", "AmNcuts", "NMI")] == pytest.approx(25.7)
    # Sec. 3.4: Event ACC over SiMVC, CoMVC, MFLVC, DealMVC, ICMVC, DIVICE
    for method, gap in zip(["SiMVC", "CoMVC", "MFLVC", "DealMVC", "ICMVC", "DIVICE"], [19.7, 7.4, 8.0, 30.0, 20.1, 25.1]):
        assert 56.5 - table2[("2", "Event", method, "ACC")] == pytest.approx(gap)


def test_reference_file_tables_3_to_5():
    values = _reference_values()
    methods = {
        "3": [f"SDCIB ({k} layers)" for k in range(2, 8)],
        "4": ["SDCIB w/o I(Y;Y)", "SDCIB w/o I(H;H)", "SDCIB w/o I(Y;Y) and I(H;H)", "SDCIB"],
        "5": ["SDCIB-no-hidden", "SDCIB"],
    }
    for table, names in methods.items():
        assert set(values[table]) == {(table, d, m, metric) for d in DATASETS for m in names for metric in ("ACC", "NMI")}
    sdcib = {(d, metric): values["2"][("2", d, "SDCIB", metric)] for d in DATASETS for metric in ("ACC", "NMI")}
    for table, method in (("3", "SDCIB (4 layers)"), ("4", "SDCIB"), ("5", "SDCIB")):
        assert {(d, metric): values[table][(table, d, method, metric)] for d, metric in sdcib} == sdcib
    # Table 5's "Improvement" row
    gains = [3.9, 3.4, 10.6, 7.3, 4.0, 1.8, 3.5, 4.7]
    keys = [(d, metric) for d in DATASETS for metric in ("ACC", "NMI")]
    for (dataset, metric), gain in zip(keys, gains):
        assert sdcib[(dataset, metric)] - values["5"][("5", dataset, "SDCIB-no-hidden", metric)] == pytest.approx(gain)
    # Sec. 3.6: Event ACC -26.2 without I(Y;Y); ESP ACC +0.9 without I(H;H); Caltech-2V ACC -35.3 without both
    assert sdcib[("Event", "ACC")] - values["4"][("4", "Event", "SDCIB w/o I(Y;Y)", "ACC")] == pytest.approx(26.2)
    assert values["4"][("4", "ESP", "SDCIB w/o I(H;H)", "ACC")] - sdcib[("ESP", "ACC")] == pytest.approx(0.9)
    assert sdcib[("Caltech-2V", "ACC")] - values["4"][("4", "Caltech-2V", "SDCIB w/o I(Y;Y) and I(H;H)", "ACC")] == pytest.approx(35.3)


# --------------------------------------------------------------------------- figures


def _write_figure_inputs(run, seed, n=60, classes=3, embedding=True):
    rng = np.random.default_rng(seed)
    y_true = np.repeat(np.arange(classes), n // classes)
    y_pred = (y_true + 1) % classes
    y_pred[:5] = 0
    np.savez(run / "predictions.npz", y_true=y_true, y_pred=y_pred, epoch=3)
    if embedding:
        features = rng.normal(size=(n, 8)) + y_true[:, None] * 3.0
        np.savez(run / "embedding.npz", features=features.astype(np.float32), y_pred=y_pred)
    (run / "metrics.csv").write_text(
        "epoch,loss,compression,instance,last_batch_loss,acc,nmi,ari,nonempty_clusters,largest_cluster_share,assignment_entropy\n"
        f"1,{3 + seed},1.0,-2.0,2.5,,,,,,\n"
        f"2,{2 + seed},0.9,-2.1,2.0,0.5,0.3,0.2,3,0.4,0.9\n"
        f"3,{1 + seed},0.8,-2.2,1.5,0.6,0.4,0.3,3,0.35,0.95\n"
    )


def _is_png(path):
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_written(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        _write_figure_inputs(_run(runs, f"s{seed}", seed, 0.6 + seed / 10, config=SDCIB_CONFIG), seed)
    # a 2 x 2 alpha / beta grid on one dataset, one seed each, with results.json only: no
    # curves, confusion matrix or representation for those (each said so)
    for i, (alpha, beta) in enumerate([(0.1, 1.0), (0.1, 10.0), (0.2, 1.0), (0.2, 10.0)]):
        config = _config(SDCIB_CONFIG, model__alpha=alpha, model__beta=beta)
        _run(runs, f"ab{i}", 0, 0.3 + i / 10, dataset="event", config=config, overrides=(f"model.alpha={alpha}", f"model.beta={beta}"))
    out = tmp_path / "out"
    assert main([str(runs), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    for name in ("table.md", "table.csv", "table.tex"):
        assert (out / name).stat().st_size > 0
    # alpha 0.1, beta 1 given on the command line is still the paper's setting (read from the config)
    assert "| sdcib | event | model.alpha=0.1 model.beta=1.0 | 1 | 0 | last | 0.3000 | 0.565 | -0.2650 |" in (out / "table.md").read_text()
    for name in ("curves_handwritten_sdcib.png", "confusion_handwritten_sdcib.png", "tsne_handwritten_sdcib.png", "alpha_beta_sdcib.png"):
        assert _is_png(out / name), name
    assert sorted(p.name for p in out.glob("*.png")) == [
        "alpha_beta_sdcib.png",
        "confusion_handwritten_sdcib.png",
        "curves_handwritten_sdcib.png",
        "tsne_handwritten_sdcib.png",
    ]
    assert "t-SNE: sdcib on event (model.alpha=0.1 model.beta=1.0): the run(s) saved no representation (embedding.npz" in err
    assert "curves: sdcib on event (model.alpha=0.2 model.beta=10.0): no metrics.csv" in err
    assert "confusion: sdcib on event (model.alpha=0.2 model.beta=10.0): no predictions.npz" in err
    # --figures alone: figures, no tables; --plots picks the kinds
    only = tmp_path / "figures"
    assert main([str(runs / "s0"), "--figures", str(only), "--plots", "confusion"]) == 0
    assert sorted(p.name for p in only.iterdir()) == ["confusion_handwritten_sdcib.pdf", "confusion_handwritten_sdcib.png"]
    assert _is_png(only / "confusion_handwritten_sdcib.png")
    assert FIGURE_KINDS == KINDS


def test_matched_confusion_counts():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([5, 5, 7, 7, 7, 9, 9, 4])  # cluster 4 is left unmatched
    matrix, classes, has_unmatched = matched_confusion(y_true, y_pred)
    assert has_unmatched and classes.tolist() == [0, 1, 2]
    assert matrix.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [0, 0, 2, 1]]
    square, _, has_unmatched = matched_confusion(y_true, np.array([1, 1, 1, 0, 0, 2, 2, 2]))
    assert not has_unmatched and np.trace(square) == 8


# --------------------------------------------------------------------------- errors


def test_missing_folder_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: no such folder: {tmp_path / 'nope'}\n"


def test_folder_without_runs_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no run folders") and err.count("\n") == 1


def test_unreadable_results_are_listed(tmp_path):
    run = _run(tmp_path, "0", 0, 0.5)
    (run / "results.json").write_text("{not json")
    _run(tmp_path, "1", 0, 0.5)
    table = _table(tmp_path)
    assert len(table.rows) == 1 and table.unfinished[0].reason.startswith("unreadable results.json")


def test_a_superseded_folder_is_listed_last_and_named_as_such(tmp_path):
    from clusterbench.engine.sweep import SUMMARY
    from clusterbench.engine.sweep import summarize as summarize_sweep

    sweep = tmp_path / "sweep"
    _run(sweep, "a_old", 1, 0.1, status="failed", error="trainer.checkpoint_when_done: unknown key")
    _run(sweep, "b_killed", 2, 0.1, status=None)
    _run(sweep, "c_new", 1, 0.6)
    for name, extra in (("a_old", []), ("b_killed", []), ("c_new", ["trainer.checkpoint_when_done=weights"])):
        seed = 2 if name == "b_killed" else 1
        (sweep / name / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={seed}", *extra]))
    (sweep / SUMMARY).write_text(json.dumps(summarize_sweep(sweep)))
    table = _table(tmp_path)
    assert [(row.cells["acc"].value, row.cells["acc"].n) for row in table.rows] == [(0.6, 1)]
    reasons = [(item.path.name, item.reason) for item in table.unfinished]
    assert reasons == [
        ("b_killed", "no results.json (running, stopped or crashed)"),
        ("a_old", "superseded: the same job finished in c_new (failed: trainer.checkpoint_when_done: unknown key)"),
    ]
    # without the sweep's summary nothing is claimed
    (sweep / SUMMARY).unlink()
    assert not any(item.reason.startswith("superseded") for item in _table(tmp_path).unfinished)


def test_multiview_rows_meet_their_table2_and_own_paper_numbers(tmp_path, capsys):
    comvc = {"seed": 0, "model": {"_target_": "clusterbench.methods.comvc.CoMVC"}, "loss": {"weights": {"contrast": 1.0}}}
    _run(tmp_path, "0", 0, 0.40, dataset="event", model="comvc", config=comvc, nmi=0.2)
    ablation = _config(comvc, loss__weights__contrast=0.0)
    _run(tmp_path, "1", 0, 0.30, dataset="event", model="comvc", config=ablation, nmi=0.1, overrides=("loss.weights.contrast=0",))
    _run(tmp_path, "2", 0, 0.97, dataset="bdgp", model="mflvc", config={"seed": 0}, nmi=0.9)
    assert main([str(tmp_path)]) == 0
    md = capsys.readouterr().out
    assert "| 0.491 | -0.0910 |" in md and "Table 2: CoMVC |" in md  # CoMVC on Event: 49.1
    assert md.count("Table 2: CoMVC") == 1  # the ablation is not the Table 2 row
    assert "| 0.989* | -0.0190 |" in md and "Table main: MFLVC |" in md  # MFLVC's own BDGP number (* its source note)
