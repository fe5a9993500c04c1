"""An unexpected failure of `depot serve` is one line on stderr; its traceback goes to a log file.

A person starting a service reads the last line it printed. A traceback of forty frames hides
that line, and a supervisor's journal keeps only the head of it; the file keeps all of it.
"""

from __future__ import annotations

import datetime as dt
import os
import traceback
from pathlib import Path

LOG_NAME = "depot-errors.log"


def failure_log(data_dir: Path | str) -> Path:
    return Path(data_dir).expanduser().resolve() / LOG_NAME


def record_failure(data_dir: Path | str, error: BaseException, where: str) -> str:
    """Append the traceback of `error` to the failure log; return the line to print (after "depot: ")."""
    path = failure_log(data_dir)
    text = "".join(traceback.format_exception(error))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"--- {dt.datetime.now(dt.UTC).isoformat()} pid {os.getpid()} {where}\n{text}\n")
        place = f"the traceback is in {path}"
    except OSError as unwritable:  # the one line still has to go out
        place = f"(could not write {path}: {unwritable.strerror})"
    summary = str(error).splitlines()[0] if str(error) else ""
    return f"unexpected failure {where}: {type(error).__name__}: {summary}; {place}"
