"""Seed a PrefLab home with prompts, generations and pairs directly (no model needed)."""

from __future__ import annotations

from pathlib import Path

XSS = [
    '<img src=x onerror="window.__xss=(window.__xss||0)+1">',
    "<script>window.__xss=(window.__xss||0)+1</script>",
    '<svg onload="window.__xss=(window.__xss||0)+1"></svg>',
    '"><iframe src="javascript:window.__xss=1"></iframe>',
    "[click](javascript:window.__xss=1) **bold** <b id=injected>b</b>",
]


def seed_pairs(home: Path, n: int, *, xss: bool = False) -> list[dict]:
    """n pairs whose texts say which is which; returns [{pair_id, good, bad}] with good = gen_a's text."""
    from store import Store

    home.mkdir(parents=True, exist_ok=True)
    rows = []
    with Store.open(home / "preflab.duckdb") as store:
        model = store.ensure_model("sft", "tiny", [], "sft")
        for i in range(n):
            payload = XSS[i % len(XSS)] if xss else ""
            messages = [{"role": "user", "content": f"Triage incident {i}. {payload}"}]
            pid = store.add_prompt(messages, "test", "train", gold={"severity": "SEV2"})
            good = f"Severity: SEV2\nSummary: Incident {i} degraded checkout.{payload}\nNext steps:\n- Roll back.\n- Page on-call."
            bad = f"not sure about incident {i} {payload}"
            a = store.add_generation(pid, model.id, good)
            b = store.add_generation(pid, model.id, bad)
            rows.append({"pair_id": store.add_pair(pid, a, b), "good": good, "bad": bad})
    return rows
