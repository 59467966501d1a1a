"""Training-health warnings on synthetic metric frames, final numbers, and the run report."""

from __future__ import annotations

import pandas as pd
import pytest

from train.health import final_metrics, plot_curves, training_warnings, wilson_interval, write_report


def frame(**curves) -> pd.DataFrame:
    """Rows (step, split, name, value) from keyword curves named split__metric (slashes as '_')."""
    rows = []
    names = {
        "chosen": ("train", "rewards/chosen"),
        "rejected": ("train", "rewards/rejected"),
        "gap": ("train", "rewards/margins"),
        "val_gap": ("eval", "rewards/margins"),
        "kl": ("train", "kl"),
        "loss": ("train", "loss"),
    }
    for key, values in curves.items():
        split, name = names[key]
        steps = values.index if isinstance(values, pd.Series) else range(1, len(values) + 1)
        rows += [
            {"step": int(s), "split": split, "name": name, "value": float(v)}
            for s, v in zip(steps, values, strict=True)
        ]
    return pd.DataFrame(rows, columns=["step", "split", "name", "value"])


def healthy() -> dict:
    n = 20
    return {
        "chosen": [0.02 * i for i in range(n)],
        "rejected": [-0.03 * i for i in range(n)],
        "gap": [0.05 * i for i in range(n)],
        "val_gap": pd.Series([0.1, 0.3, 0.5, 0.6], index=[5, 10, 15, 20]),
        "kl": pd.Series([0.01, 0.02, 0.03, 0.04], index=[5, 10, 15, 20]),
    }


def codes(**curves) -> list[str]:
    return [w.code for w in training_warnings(frame(**curves))]


def test_a_healthy_run_raises_no_warning():
    assert codes(**healthy()) == []
    assert training_warnings(frame()) == []


def test_chosen_and_rejected_falling_together():
    curves = healthy()
    curves["chosen"] = [-0.01 * i for i in range(20)]
    curves["rejected"] = [-0.04 * i for i in range(20)]
    assert codes(**curves) == ["rewards_falling"]


def test_kl_growing_past_the_threshold():
    curves = healthy()
    curves["kl"] = pd.Series([0.02, 0.08, 0.15, 0.3], index=[5, 10, 15, 20])
    assert codes(**curves) == ["kl_high"]
    curves["kl"] = pd.Series([0.3, 0.2, 0.15, 0.12], index=[5, 10, 15, 20])  # high but falling back
    assert codes(**curves) == []


def test_flat_reward_gap():
    curves = healthy()
    curves["gap"] = [0.001 * (i % 3) for i in range(20)]
    assert "gap_flat" in codes(**curves)


def test_validation_gap_falling_while_train_gap_grows():
    curves = healthy()
    curves["val_gap"] = pd.Series([0.2, 0.5, 0.3, 0.1], index=[5, 10, 15, 20])
    assert codes(**curves) == ["overfitting"]
    curves["gap"] = [0.05 * i for i in range(10)] + [0.45 - 0.04 * i for i in range(10)]  # both falling: no
    assert "overfitting" not in codes(**curves)


def test_warnings_say_what_to_try():
    curves = healthy()
    curves["kl"] = pd.Series([0.02, 0.5], index=[5, 10])
    (warning,) = training_warnings(frame(**curves))
    assert "0.500 nats/token" in warning.message and "beta may be too low" in warning.message


def test_wilson_interval_and_final_numbers():
    low, high = wilson_interval(40, 50)
    assert low == pytest.approx(0.6696, abs=1e-3) and high == pytest.approx(0.8876, abs=1e-3)
    data = frame(**healthy())
    data = pd.concat(
        [data, pd.DataFrame([{"step": 20, "split": "eval", "name": "rewards/accuracies", "value": 0.8}])]
    )
    final = final_metrics(data, val_pairs=50)
    assert final["val_accuracy"] == 0.8 and final["val_accuracy_ci"] == [0.6696, 0.8876]
    assert final["kl"] == 0.04 and final["val_margin"] == 0.6


def test_report_and_overlay_plot(tmp_path):
    warnings = training_warnings(frame(**{**healthy(), "kl": pd.Series([0.1, 0.4], index=[5, 10])}))
    run = {
        "run_id": 7,
        "status": "done",
        "variant": "sft",
        "model": "sft+dpo@7",
        "train_pairs": 90,
        "val_pairs": 10,
        "sources": {"human": 100},
        "dropped": {"tie": 3},
        "final": {"val_accuracy": 0.8},
    }
    report = write_report(tmp_path / "report.md", run=run, frame=frame(**healthy()), warnings=warnings)
    text = report.read_text()
    assert "# DPO run 7: done" in text and "90 training + 10 validation" in text and "tie 3" in text
    assert "**kl_high**" in text and "![curves](curves.png)" in text
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    overlay = plot_curves(
        {"run 1": frame(**healthy()), "run 2": frame(gap=[0.1, 0.2])}, tmp_path / "runs.png"
    )
    assert overlay.stat().st_size > 1000
