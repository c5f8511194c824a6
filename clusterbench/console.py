"""`say`: a line for the console that also goes into the run's train.log. A low-level module
(methods, losses and nn import nothing from engine/)."""

from __future__ import annotations

import logging
import sys
import time


def say(message: str, error: bool = False) -> None:
    """A line for the console (stdout, or stderr when `error`), also written into the run's
    train.log (the file handlers Hydra's job logging attaches), so train.log holds what the
    console showed without printing the line twice."""
    print(message, file=sys.stderr if error else sys.stdout, flush=True)
    record = logging.LogRecord("clusterbench", logging.WARNING if error else logging.INFO, __file__, 0, message, None, None)
    record.created = time.time()
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
