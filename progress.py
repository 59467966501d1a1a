"""The CLI's progress bar: tqdm fed with the services' (done, total) callbacks."""

from __future__ import annotations


class Bar:
    """A tqdm bar fed with (done, total) callbacks.

    disable=None shows it on a terminal only, so logs and captured stderr keep errors on one line.
    """

    def __init__(self, desc: str, unit: str = "step"):
        from tqdm import tqdm

        self.bar = tqdm(desc=desc, unit=unit, dynamic_ncols=True, disable=None)

    def __call__(self, done: int, total: int | None) -> None:
        self.bar.total = total or done
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
