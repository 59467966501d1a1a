"""The CLI's progress bar: tqdm fed with the services' (done, total) callbacks."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("preflab.progress")

# Set by the CLI's Ctrl-C / SIGTERM handler. The next progress report, a point outside any database
# transaction, raises KeyboardInterrupt: the job stops cleanly instead of in the middle of a write.
STOP = threading.Event()


def check_stop() -> None:
    """Raise KeyboardInterrupt when the CLI was asked to stop."""
    if STOP.is_set():
        raise KeyboardInterrupt


class Bar:
    """A tqdm bar fed with (done, total) callbacks.

    disable=None shows the bar on a terminal only, so logs and captured stderr keep errors on one line; off a
    terminal (a log file, CI) progress is logged instead, once per tenth of the work.
    """

    def __init__(self, desc: str, unit: str = "step"):
        from tqdm import tqdm

        self.desc, self.unit = desc, unit
        self.bar = tqdm(desc=desc, unit=unit, dynamic_ncols=True, disable=None)
        self.logged_tenth = -1

    def __call__(self, done: int, total: int | None) -> None:
        check_stop()
        total = total or done
        if self.bar.disable:
            tenth = 10 * done // total if total else 10
            if tenth > self.logged_tenth:
                self.logged_tenth = tenth
                log.info("%s: %d/%d %s", self.desc, done, total, self.unit)
            return
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
