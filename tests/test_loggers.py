"""metrics.csv (engine/loggers.py CSVLogger): appended a row an epoch, rewritten only when a
column appears or a resume drops rows, and the same file as writing all rows at once."""

from __future__ import annotations

import csv
import io

from clusterbench.engine.loggers import CSVLogger


def _rows(n: int, eval_every: int) -> list[dict]:
    """Epoch rows as the loop logs them: the loss every epoch, metrics on evaluated epochs."""
    rows = []
    for epoch in range(1, n + 1):
        row = {"epoch": epoch, "loss": 1.0 / epoch}
        if epoch % eval_every == 0:
            row.update(acc=0.5 + epoch / 100, nmi=0.25)
        rows.append(row)
    return rows


def _all_at_once(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def test_appended_rows_make_the_file_all_rows_at_once_would(tmp_path, monkeypatch):
    rewrites = []
    logger = CSVLogger()
    logger.start(tmp_path, {}, "run")
    monkeypatch.setattr(logger, "_rewrite", lambda real=logger._rewrite: (rewrites.append(len(logger.rows)), real())[1])
    rows = _rows(7, eval_every=3)
    for row in rows:
        logger.log(row)
        logger.sync()
    assert (tmp_path / "metrics.csv").read_bytes().decode() == _all_at_once(rows)
    assert rewrites == [1, 3]  # the first row, then the first evaluation's new columns


def test_a_resume_keeps_the_rows_up_to_its_checkpoint_and_drops_a_line_cut_short(tmp_path):
    rows = _rows(6, eval_every=2)
    first = CSVLogger()
    first.start(tmp_path, {}, "run")
    for row in rows:
        first.log(row)
    with open(tmp_path / "metrics.csv", "a") as handle:  # a crash in the middle of a write
        handle.write("7,0.1")
    resumed = CSVLogger()
    resumed.start(tmp_path, {}, "run", resume_epoch=4)
    resumed.log(rows[4])
    kept = list(csv.DictReader(open(tmp_path / "metrics.csv", newline="")))
    assert [row["epoch"] for row in kept] == ["1", "2", "3", "4", "5"]
    assert kept[1]["acc"] == str(rows[1]["acc"]) and kept[4]["acc"] == ""
