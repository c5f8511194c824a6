"""Papers' reported numbers, as data, for `python -m clusterbench.report`.

Each paper is two files named alike: `<name>.csv` (columns table, dataset, method, metric,
value, note: one reported number a line, as printed) and `<name>.yaml` (title, scale, metric and
dataset name mappings, the protocol behind the numbers, and rules saying which runs each row is
compared with). docs/report.md explains how to add a paper.
"""
