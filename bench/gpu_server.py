"""Phase 4 of bench/gpu_check.py: a local OpenAI-compatible server on the GPU against in-process generation.

vLLM when it is on PATH, else `transformers serve` with its extras; the same prompts go through PrefLab's endpoint
client (models/endpoint.py, the OpenAI SDK) and the rate is set against the GPU's in-process rate from phase 3.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time

from bench.report import CheckReport
from bench.servers import ServerFailed, child_env, free_port, running, transformers_serve_command

SERVER_STARTUP = 180.0  # seconds a server gets to answer its first completion


def server_command(model_dir: str, port: int, device: str) -> tuple[str, list[str]] | None:
    """(name, command) of the server to start: vLLM when on PATH, else `transformers serve`; None when neither."""
    vllm = shutil.which("vllm")
    if vllm:
        return "vllm", [vllm, "serve", model_dir, "--host", "127.0.0.1", "--port", str(port), "--dtype",
                        "bfloat16", "--max-model-len", "2048", "--gpu-memory-utilization", "0.3"]  # fmt: skip
    try:
        from transformers.utils.import_utils import is_serve_available
    except ImportError:
        return None
    if not is_serve_available():
        return None
    dtype = "auto" if device == "cpu" else "bfloat16"
    return "transformers serve", transformers_serve_command(model_dir, port, device, dtype)


def serving(args, device: str, gpu_rate: float | None, report: CheckReport, deadline: float) -> None:
    """The same prompts through a local server and PrefLab's endpoint client, vs in-process generation."""
    try:
        import openai  # noqa: F401

        from models.endpoint import Endpoint, EndpointModel
    except ImportError as exc:
        report.skip("server", f"PrefLab's endpoint client cannot load ({exc})")
        return
    from bench.generation import demo_prompts
    from models.gguf_cache import ensure_default_cache
    from models.sampling import SamplingParams

    model_dir = str(ensure_default_cache(args.cache_dir))
    port = free_port()
    found = server_command(model_dir, port, device)
    if found is None:
        report.skip(
            "server", "no vllm on PATH and `transformers serve` lacks its extras (transformers[serving])"
        )
        return
    name, command = found
    report.say(f"starting {name}: {shlex.join(command)}")
    log = tempfile.NamedTemporaryFile(prefix="preflab-gpu-check-server-", suffix=".log", delete=False)
    log.close()
    client = EndpointModel(
        Endpoint(f"http://127.0.0.1:{port}/v1", served_model=model_dir),
        concurrency=args.concurrency,
        max_attempts=1,
    )
    probe = [{"role": "user", "content": "Hi"}]

    def answers() -> bool:
        try:
            client.complete(probe, SamplingParams(max_new_tokens=1), seed=0)
            return True
        except Exception:
            return False

    try:
        # Its own session, stopped as a whole: vLLM starts engine processes of its own.
        with running(
            command,
            log_path=log.name,
            ready=answers,
            timeout=max(0.0, min(deadline - time.monotonic(), SERVER_STARTUP)),
            name=name,
            env=child_env(),
            poll=2,
            group=True,
        ):
            prompts = demo_prompts(args.prompts)
            params = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=args.max_new_tokens)
            started = time.perf_counter()
            outcome = client.generate(prompts, params, seeds=list(range(len(prompts))))
            seconds = time.perf_counter() - started
    except ServerFailed as exc:
        report.fail("server", exc.short())
        return
    finally:
        client.close()
    if outcome.error is not None:
        report.fail("server", f"{name}: {outcome.error}")
        return
    tokens = sum(g.n_tokens for g in outcome.results if g is not None)
    rate = tokens / seconds
    report.say(f"{name}: {tokens} tokens in {seconds:.1f} s at concurrency {args.concurrency}")
    report.row(
        f"{name} on the GPU (same prompts, concurrency {args.concurrency})",
        "",
        f"{rate:.3g} tok/s",
        f"{rate / gpu_rate:.2f}x in-process" if gpu_rate else "",
        "through models/endpoint.py (the OpenAI SDK)",
    )
