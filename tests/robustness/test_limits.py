"""Bounds on what a user can start: tokens (within the model's context), epochs, limits; each a one-line refusal."""

from __future__ import annotations

import pytest

from common.errors import UserInputError


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert text and "\n" not in text, text
    return text


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("max_new_tokens", 10**6, "max-new-tokens"),
        ("limit", 10**12, "limit"),
        ("per_prompt", 10**4, "per-prompt"),
        ("batch_size", 10**6, "batch-size"),
    ],
)
def test_generation_settings_have_upper_bounds(field, value, named):
    from annotate.generation import GenerateConfig

    with pytest.raises(UserInputError) as exc:
        GenerateConfig(**{field: value})
    assert named in _one_line(exc)


def test_eval_and_arena_sampling_is_bounded():
    from evaluate.eval_service import EvalRequest
    from evaluate.responses import ResponseParams

    with pytest.raises(UserInputError) as exc:
        ResponseParams(max_new_tokens=10**6)
    assert "max_new_tokens" in _one_line(exc)
    with pytest.raises(UserInputError) as exc:
        EvalRequest(limit=10**12)
    assert "limit" in _one_line(exc)


@pytest.mark.parametrize(("field", "value"), [("epochs", 10**6), ("limit", 10**12), ("max_length", 10**8)])
def test_sft_settings_have_upper_bounds(field, value):
    from train.sft_config import SFTRunConfig

    with pytest.raises(UserInputError) as exc:
        SFTRunConfig(**{field: value})
    assert field in _one_line(exc)


def test_sampling_params_refuse_an_unbounded_budget():
    from common.errors import ModelError
    from models.sampling import SamplingParams

    with pytest.raises(ModelError) as exc:
        SamplingParams(max_new_tokens=10**7)
    assert "max_new_tokens" in _one_line(exc)


def test_cli_generate_refuses_a_huge_budget_in_one_line(tmp_path):
    from tests.serving import run_cli

    done = run_cli("generate", "--max-new-tokens", "1000000", home=tmp_path / "home")
    assert done.returncode == 2
    err = done.stderr.strip()
    assert err.count("\n") == 0 and "max-new-tokens" in err and "Traceback" not in err, err
