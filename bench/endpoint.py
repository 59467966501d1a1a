"""The same prompts through an OpenAI-compatible server at concurrency 1/4/16 vs in-process generation, one run.

    python -m bench.endpoint [--prompts 16] [--max-new-tokens 32] [--cache-dir DIR] [--results bench/RESULTS.md]
    python -m bench.endpoint --smoke      # 4 prompts, 8 tokens, concurrency 1 and 4: a check that it all runs

Arms, on the default model (SmolLM2-135M, converted once to safetensors) and the first N demo prompts, greedy
(temperature 0: `transformers serve` samples only when the checkpoint's generation config says so, so greedy is
the one setting both sides decode the same way):

  in-process   `LocalModel.generate` as a generation job calls it (batched, one call)
  server cN    `transformers serve MODEL_DIR` on this machine, PrefLab's endpoint client with N requests in
               flight (one request per response, as a generation job sends them)

The server is started once and warmed with one request; every arm's ratio is its tokens/s against in-process,
measured in the same run. `matches` counts responses identical to in-process (greedy on both sides).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--concurrency", default="1,4,16", help="comma-separated request concurrencies")
    p.add_argument("--batch-size", type=int, default=16, help="in-process batch size")
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "preflab" / "bench-models"))
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument("--smoke", action="store_true", help="4 prompts, 8 tokens, concurrency 1,4")
    p.add_argument("--results", help="append a markdown section to this file")
    args = p.parse_args(argv)
    if args.smoke:
        args.prompts, args.max_new_tokens, args.concurrency = 4, 8, "1,4"
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    return args


def demo_prompts(n: int) -> list[list[dict]]:
    rows = [json.loads(line) for line in (ROOT / "data" / "incidents.jsonl").read_text().splitlines() if line]
    return [[{"role": "user", "content": r["prompt"]}] for r in rows[:n]]


def server_arm(endpoint, concurrency: int, chats, params, seeds, reference) -> tuple:
    """The same prompts through PrefLab's endpoint client with `concurrency` requests in flight."""
    from models.endpoint import EndpointModel

    client = EndpointModel(endpoint, concurrency=concurrency, timeout=600)
    began = time.perf_counter()
    outcome = client.generate(chats, params, seeds=seeds)
    seconds = time.perf_counter() - began
    client.close()
    if outcome.error is not None:
        raise SystemExit(f"server arm c{concurrency} failed: {outcome.error}")
    out = outcome.results
    latency = sum(g.seconds for g in out) / len(out)
    matches = sum(g.text == r.text for g, r in zip(out, reference, strict=True))
    return (f"server c{concurrency}", seconds, sum(g.n_tokens for g in out), latency, matches)


def main(argv=None) -> int:
    import torch

    from bench.servers import ServerFailed, free_port, transformers_serve
    from models.endpoint import Endpoint
    from models.gguf_cache import ensure_default_cache
    from models.local import DEFAULT_BASE, SamplingParams, Variant, load_variant

    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    chats = demo_prompts(args.prompts)
    seeds = list(range(len(chats)))
    params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=args.max_new_tokens)
    load_before = os.getloadavg()
    started = time.perf_counter()
    model_dir = ensure_default_cache(args.cache_dir)

    rows = []
    local = load_variant(Variant("base", DEFAULT_BASE), cache_dir=args.cache_dir, device="cpu")
    local.generate(chats[:1], params, seeds=[0], batch_size=1)  # warm-up
    began = time.perf_counter()
    reference = local.generate(chats, params, seeds=seeds, batch_size=args.batch_size)
    seconds = time.perf_counter() - began
    tokens = sum(g.n_tokens for g in reference)
    rows.append(("in-process", seconds, tokens, None, len(chats)))
    del local

    port = args.port or free_port()
    log_path = Path(args.cache_dir) / f"transformers-serve-{port}.log"
    try:
        with transformers_serve(model_dir, log_path, port=port) as url:
            for c in args.concurrency:
                rows.append(server_arm(Endpoint(url, str(model_dir)), c, chats, params, seeds, reference))
    except ServerFailed as exc:
        raise SystemExit(str(exc)) from None

    base_tps = rows[0][2] / rows[0][1]
    lines = [
        f"command: python -m bench.endpoint {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
        f"machine: {os.uname().machine}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); model {DEFAULT_BASE} (float32), greedy, "
        f"{len(chats)} demo prompts, max {args.max_new_tokens} new tokens",
        f"load average at start: {' '.join(f'{x:.2f}' for x in load_before)}; "
        f"at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; wall {time.perf_counter() - started:.0f} s",
        "",
        "| arm | seconds | tokens | tok/s | ratio vs in-process | mean request latency s | matches in-process |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, seconds, tokens, latency, matches in rows:
        tps = tokens / seconds
        lat = "-" if latency is None else f"{latency:.2f}"
        lines.append(
            f"| {name} | {seconds:.2f} | {tokens} | {tps:.1f} | {tps / base_tps:.2f}x | {lat} | "
            f"{matches}/{len(chats)} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.results:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        with open(args.results, "a") as f:
            f.write(f"\n### endpoint vs in-process generation, {stamp}\n\n```text\n{text}\n```\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
