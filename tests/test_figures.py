"""report figures fit for a paper: PNG at 200 dpi and PDF, one panel per loss term, legends
outside the data, t-SNE colours matched to classes, readable file names, class names."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from clusterbench.report import figures, find_runs, summarize
from clusterbench.report.figures import MAX_NAME, group_slug, overrides_slug, tsne_colours, write_figures


def _run(root, name, seed, overrides=(), class_names=None, n=60):
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed}))
    dataset = {"name": "toy"} if class_names is None else {"name": "toy", "class_names": class_names}
    (run / "results.json").write_text(
        json.dumps(
            {
                "status": "finished",
                "model": "sdcib",
                "seed": seed,
                "overrides": [f"seed={seed}", *overrides],
                "dataset": dataset,
                "selection": {"rule": "last", "epoch": 3, "uses_labels": False},
                "metrics": {"acc": 0.5, "nmi": 0.4, "ari": 0.3},
            }
        )
    )
    rng = np.random.default_rng(seed)
    y_true = np.repeat(np.arange(3), n // 3)
    y_pred = (y_true + 1) % 3  # cluster c+1 is class c
    np.savez(run / "predictions.npz", y_true=y_true, y_pred=y_pred, epoch=3)
    np.savez(run / "embedding.npz", features=(rng.normal(size=(n, 5)) + 4.0 * y_true[:, None]).astype(np.float32), y_pred=y_pred)
    (run / "metrics.csv").write_text(
        "epoch,loss,compression,instance,acc,nmi,ari,nonempty_clusters,largest_cluster_share,assignment_entropy\n"
        f"1,{7000 + seed},7000.0,-0.02,,,,,,\n2,6500,6499.0,-0.03,0.5,0.3,0.2,3,0.4,0.9\n3,6000,5999.0,-0.04,0.6,0.4,0.3,3,0.35,0.95\n"
    )
    return run


@pytest.fixture
def captured(monkeypatch):
    """The figures as drawn (name -> Figure), besides the files."""
    drawn = {}
    save = figures._save

    def keep(figure, path, report):
        drawn[path.name] = figure
        save(figure, path, report)

    monkeypatch.setattr(figures, "_save", keep)
    return drawn


def test_png_at_200_dpi_and_pdf_with_readable_names(tmp_path, captured):
    for seed in (0, 1):
        _run(tmp_path / "runs", f"s{seed}", seed, overrides=("model.alpha=0.1", "model.beta=10"))
    groups = list(summarize(find_runs([tmp_path / "runs"]))[0].values())
    report = write_figures(groups, tmp_path / "out", kinds=("curves", "confusion", "tsne"))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    stem = "toy_sdcib_alpha-0.1_beta-10"
    assert names == sorted(f"{kind}_{stem}.{suffix}" for kind in ("curves", "confusion", "tsne") for suffix in ("pdf", "png"))
    assert sorted(p.name for p in report.written) == names
    for name in names:
        path = tmp_path / "out" / name
        if name.endswith(".png"):
            with Image.open(path) as image:
                assert round(image.info["dpi"][0]) == 200
        else:
            assert path.read_bytes()[:5] == b"%PDF-"


def test_loss_terms_one_panel_each_and_legends_outside(tmp_path, captured):
    _run(tmp_path / "runs", "s0", 0)
    groups = list(summarize(find_runs([tmp_path / "runs"]))[0].values())
    write_figures(groups, tmp_path / "out", kinds=("curves", "tsne"))
    figure = captured["curves_toy_sdcib"]
    visible = [ax for ax in figure.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in visible]
    assert titles == ["loss", "loss term: compression", "loss term: instance", "evaluation"]
    # the 7000-nat term and the near-zero one each on their own scale
    low, high = visible[2].get_ylim()
    assert high - low < 1.0
    figure.canvas.draw()
    for fig in (figure, captured["tsne_toy_sdcib"]):
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is not None:
                assert legend.get_window_extent().x0 >= ax.get_window_extent().x1 - 1, ax.get_title()
    assert visible[3].get_legend() is not None


def test_tsne_clusters_take_their_matched_class_colour_and_have_legends():
    classes = np.array([0, 0, 1, 1, 2, 2, 2])
    clusters = np.array([5, 5, 3, 3, 9, 9, 7])  # 7 is matched to no class
    (title, colour, legend), (_, class_colour, class_legend) = tsne_colours(clusters, classes, ["cat", "dog", "eel"])
    assert colour.tolist() == [0, 0, 1, 1, 2, 2, 3] and class_colour.tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert legend == {0: "cluster 5 → cat", 1: "cluster 3 → dog", 2: "cluster 9 → eel", 3: "cluster 7 (unmatched)"}
    assert class_legend == {0: "cat", 1: "dog", 2: "eel"}
    ((_, alone, alone_legend),) = tsne_colours(clusters, None)
    assert alone.tolist() == [1, 1, 0, 0, 3, 3, 2] and alone_legend[0] == "cluster 3"


def test_confusion_matrix_shows_class_names(tmp_path, captured):
    _run(tmp_path / "runs", "s0", 0, class_names=["cat", "dog", "eel"])
    groups = list(summarize(find_runs([tmp_path / "runs"]))[0].values())
    write_figures(groups, tmp_path / "out", kinds=("confusion",))
    ax = captured["confusion_toy_sdcib"].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog", "eel"]


def test_long_override_lists_are_cut_with_a_hash_and_stay_distinct():
    assert overrides_slug("model.alpha=0.1 loss.weights.cluster=0") == "alpha-0.1_cluster-0"
    assert overrides_slug("model.alpha=1 loss.alpha=2") == "model.alpha-1_loss.alpha-2"

    class G:
        dataset, model = "toy", "sdcib"

        def __init__(self, overrides):
            self.overrides = overrides

    long_a = G(" ".join(f"model.key{i}=value{i}" for i in range(30)))
    long_b = G(long_a.overrides + " seed=1")
    a, b = group_slug(long_a), group_slug(long_b)
    assert len(a) <= MAX_NAME and len(b) <= MAX_NAME and a != b
    assert a.startswith("toy_sdcib_key0-value0_key1-value1")
