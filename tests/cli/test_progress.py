"""The CLI progress bar off a terminal: a log line per tenth of the work, none in between."""

from __future__ import annotations

import logging

from common.progress import Bar


def test_off_a_terminal_progress_is_logged_once_per_tenth(caplog):
    bar = Bar("generating", "resp")
    assert bar.bar.disable  # pytest captures stderr: no terminal
    with caplog.at_level(logging.INFO, logger="preflab.progress"):
        for done in range(0, 101):
            bar(done, 100)
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "generating: 0/100 resp" and lines[-1] == "generating: 100/100 resp"
    assert [int(x.split()[1].split("/")[0]) for x in lines] == list(range(0, 101, 10))


def test_unknown_total_counts_what_is_done(caplog):
    bar = Bar("importing", "row")
    with caplog.at_level(logging.INFO, logger="preflab.progress"):
        bar(7, None)  # readers that cannot count their rows report done as the total
        bar(0, 0)  # nothing to do: no division by zero, nothing more to say
    bar.close()
    assert [r.getMessage() for r in caplog.records] == ["importing: 7/7 row"]
