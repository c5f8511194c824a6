"""Current results: refresh the committed store from bench folders, then regenerate the page.

    python scripts/update_results.py                                          # regenerate only
    python scripts/update_results.py --suite cpu outputs/bench/cpu [more folders of the suite]
    python scripts/update_results.py --check                                  # exit 1 if a page is stale
    python scripts/update_results.py --suite cpu --from-markdown docs/benchmark.md --blocks 1,2   # seeding

The store is docs/results/<suite>.csv (clusterbench/report/store.py): one line per method x
dataset x metric. `--suite S FOLDER...` reads the finished runs under the folders as
`report --pivot` does (the suite's common overrides left out of the row labels, so a cell run
into a folder of its own keeps its row) and replaces the stored lines of every cell
(method, dataset) they hold; the other stored lines stay. `--from-markdown FILE` takes the
cells from `report --pivot` tables pasted into FILE instead (`--blocks`: which metric blocks,
counted in file order from 1), with the source "FILE table as of <commit>" (how the store was
seeded once from docs/benchmark.md and docs/multiview.md, whose run folders are gone).
Every call then writes docs/results_current.md and the table between README.md's
`<!-- results:begin -->` and `<!-- results:end -->` lines from the whole store.
Exit status: 0 done; 1 with --check when a generated file is out of date; 2 bad input.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from clusterbench.atomic import atomic_write_bytes
from clusterbench.bench import SuiteError, load_suite
from clusterbench.report.reference import ReferenceFileError, resolve_references
from clusterbench.report.store import (
    StoreError,
    entries_from_markdown,
    entries_from_runs,
    merge,
    parse_pivot_markdown,
    read_store,
    readme_table,
    render_page,
    replace_marked,
    write_store,
)

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python scripts/update_results.py"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, help="bench folders of --suite (read only)")
    parser.add_argument("--suite", help="the suite the folders (or --from-markdown tables) belong to")
    parser.add_argument("--from-markdown", type=Path, help="seed from report --pivot tables pasted into this file")
    parser.add_argument("--blocks", default="", help="with --from-markdown: metric blocks to take, e.g. 1,2 (default all)")
    parser.add_argument("--store", type=Path, default=ROOT / "docs" / "results", help="the store folder")
    parser.add_argument("--page", type=Path, default=ROOT / "docs" / "results_current.md")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the page or README table is stale")
    return parser


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def _from_markdown(args: argparse.Namespace) -> list:
    blocks = parse_pivot_markdown(args.from_markdown.read_text())
    if args.blocks:
        chosen = [int(b) for b in args.blocks.split(",")]
        if any(not 1 <= b <= len(blocks) for b in chosen):
            raise StoreError(f"{args.from_markdown}: --blocks {args.blocks}: it has {len(blocks)} metric block(s)")
        blocks = [blocks[b - 1] for b in chosen]
    shown = args.from_markdown.resolve().relative_to(ROOT) if args.from_markdown.resolve().is_relative_to(ROOT) else args.from_markdown
    commit = _git("log", "-1", "--format=%h", "--", str(shown)) or "unknown commit"
    date = _git("log", "-1", "--format=%cs", "--", str(shown))
    return entries_from_markdown(blocks, f"{shown} table as of {commit}", date)


def _refresh(args: argparse.Namespace) -> None:
    suite = load_suite(args.suite)
    store = args.store / f"{suite.name}.csv"
    if args.from_markdown is not None:
        new, unfinished = _from_markdown(args), []
    else:
        new, unfinished = entries_from_runs(args.folders, suite.common, resolve_references("auto"))
    stored = read_store(store)
    cells = {e.cell for e in new}
    replaced = cells & {e.cell for e in stored}
    write_store(store, merge(stored, new))
    print(
        f"{store}: {len(cells)} cell(s) written ({len(replaced)} replaced, {len(cells) - len(replaced)} new); "
        f"{len(unfinished)} run folder(s) not finished or superseded, not stored",
        file=sys.stderr,
    )


def _generated(args: argparse.Namespace) -> dict[Path, str]:
    suites = {path.stem: read_store(path) for path in sorted(args.store.glob("*.csv"))}
    descriptions = {}
    for name in suites:
        try:
            descriptions[name] = load_suite(name).description
        except SuiteError:
            descriptions[name] = ""
    page = render_page(suites, descriptions, COMMAND)
    readme = replace_marked(args.readme.read_text(), readme_table(suites), str(args.readme))
    return {args.page: page, args.readme: readme}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if (args.folders or args.from_markdown) and not args.suite:
        return _error("--suite is needed with bench folders or --from-markdown")
    if args.suite and not (args.folders or args.from_markdown):
        return _error(f"--suite {args.suite}: give its bench folders (or --from-markdown FILE)")
    try:
        if args.suite and not args.check:
            _refresh(args)
        generated = _generated(args)
    except (StoreError, SuiteError, ReferenceFileError, FileNotFoundError) as err:
        return _error(str(err).splitlines()[0])
    stale = [path for path, text in generated.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"out of date: {path} (run {COMMAND})", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        text = generated[path].encode()
        atomic_write_bytes(path, lambda handle, text=text: handle.write(text))
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
