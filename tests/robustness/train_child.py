"""Child process for the crash tests: a tiny DPO run supervised from here, as `serve` or `launch.py train` would.

    python tests/robustness/train_child.py HOME TINY_BASE TINY_ADAPTER

The parent SIGKILLs this process while the worker trains; the worker runs in its own session and outlives it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(home: str, base: str, adapter: str) -> None:
    from tests.train.dpo_fixtures import TinySFT, make_ctx, tiny_config
    from train.service import run_training

    ctx = make_ctx(Path(home), TinySFT(Path(base), Path(adapter)), n_triples=16)
    # Thousands of steps: it only ends when it is stopped.
    run_training(ctx, tiny_config(max_steps=100_000, eval_steps=50_000, kl_every=0))


if __name__ == "__main__":
    main(*sys.argv[1:4])
