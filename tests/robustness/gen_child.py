"""Child process for the crash tests: run a real generation job and block inside the Nth `generate` call.

    python tests/robustness/gen_child.py HOME BLOCK_AT

Prints `call N` as each generate call starts (every earlier call's responses are committed by then) and
`blocked` when it reaches call BLOCK_AT, where it sleeps until the parent SIGKILLs it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

GENERATE_CONFIG = {"batch_size": 2, "max_new_tokens": 6, "per_prompt": 2}


def main(home: str, block_at: int) -> None:
    from annotate.generation import GenerateConfig
    from annotate.service import AnnotateService
    from common.context import AppConfig, build_context
    from models.judge import RuleJudge
    from models.local import LocalModel

    calls = [0]
    real = LocalModel.generate

    def generate(self, prompts, params, **kw):
        calls[0] += 1
        print(f"call {calls[0]}", flush=True)
        if calls[0] == block_at:
            print("blocked", flush=True)
            time.sleep(600)
        return real(self, prompts, params, **kw)

    LocalModel.generate = generate
    ctx = build_context(AppConfig(home=home), judge=RuleJudge())
    job = AnnotateService(ctx).start_generation(GenerateConfig(**GENERATE_CONFIG))
    ctx.jobs.wait(job, timeout=600)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
