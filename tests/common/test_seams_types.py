"""The seams type-check: a pinned mypy (pyproject's dev extra) over common/seams.py, common/context.py and the fakes.

Keeps test fakes from drifting from the real classes they stand in for (issue 13, item 3): tests/common/
seams_check.py assigns each real class and each fake to its Protocol, and mypy must accept every assignment.
Only the listed files are reported on: imported modules are read for their types but their own errors are
silenced, and third-party packages are not read at all (they count as Any).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import mypy.api
import mypy.version
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = [
    "common/seams.py",
    "common/context.py",
    "tests/common/seams_check.py",
    "tests/annotate/conftest.py",
    "tests/evaluate/test_eval_support.py",
    "tests/models/fake_openai.py",
]
FLAGS = [
    "--follow-imports=silent",
    "--ignore-missing-imports",
    "--check-untyped-defs",  # an untyped fake method is still compared with its protocol's
    "--no-site-packages",  # torch, transformers, openai...: Any, and no minutes spent reading them
    "--explicit-package-bases",  # tests/annotate/conftest.py is tests.annotate.conftest, not one of many `conftest`
    "--namespace-packages",
    "--python-version=3.11",
    "--show-error-codes",
    "--no-error-summary",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One mypy cache for the module's runs: the standard library's stubs are read once."""
    return tmp_path_factory.mktemp("mypy-cache")


def run_mypy(cache_dir: Path, monkeypatch: pytest.MonkeyPatch, files: list[str]) -> tuple[str, int]:
    monkeypatch.chdir(ROOT)  # module names are resolved from the repository root
    stdout, stderr, status = mypy.api.run([*FLAGS, "--cache-dir", str(cache_dir), *files])
    return stdout + stderr, status


def test_the_checking_mypy_is_the_pinned_one():
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert f"mypy=={mypy.version.__version__}" in dev, (
        "pip install -e .[dev]: the check needs the pinned mypy"
    )


def test_the_seams_the_context_and_every_fake_type_check(cache_dir, monkeypatch):
    output, status = run_mypy(cache_dir, monkeypatch, CHECKED)
    assert status == 0, output


def test_a_fake_whose_signature_drifts_fails_the_check(cache_dir, tmp_path, monkeypatch):
    """The check is not vacuous: an untyped loader that lost its `cache_dir` keyword is caught, declared or not."""
    drifted = tmp_path / "drifted.py"
    drifted.write_text(
        "from common.seams import ModelLoader\n"
        "class Loader:\n"
        "    def __call__(self, variant, *, dtype=None): ...\n"
        "class Declared(ModelLoader):\n"
        "    def __call__(self, variant, *, dtype=None): ...\n"
        "loader: ModelLoader = Loader()\n"
    )
    output, status = run_mypy(cache_dir, monkeypatch, ["common/seams.py", str(drifted)])
    assert status == 1, output
    assert 'drifted.py:5: error: Signature of "__call__" incompatible with supertype' in output, output
    assert "drifted.py:6: error: Incompatible types in assignment" in output, output
