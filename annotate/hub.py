"""Publishing to the Hugging Face Hub: build the exact folder (dataset or adapter), then upload it."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import PrefLabError, UserInputError
from common.text import first_line
from common.vocab import JobStatus, Split, values

from .export import (
    ExportFilters,
    arrow_table,
    nothing_to_export,
    pseudonym,
    select,
    store_secret,
    write_atomic,
)
from .export_cards import dataset_card, looks_local, mask_secrets, size_category
from .export_model_card import model_card

if TYPE_CHECKING:
    from store import Store

log = logging.getLogger(__name__)

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
DATASET_TAGS = ["dpo", "preference", "rlhf", "human-feedback", "trl", "preflab"]
ADAPTER_TAGS = ["dpo", "trl", "peft", "lora", "preflab"]
# Adapter-folder files never published: pickled training arguments (may hold a hub token), optimizer
# state, and our own card (rewritten).
_SKIP_ADAPTER_FILES = re.compile(
    r"^(README\.md|training_args\.bin|optimizer\.pt|scheduler\.pt|rng_state.*\.pth)$"
)


@dataclass(frozen=True)
class HubFolder:
    """A folder ready for `upload_folder`: what it holds and for which repo type."""

    path: Path
    repo_type: str
    files: list[str]  # relative paths, sorted
    rows: dict[str, int]  # split -> rows (datasets); empty for adapters

    def summary(self) -> str:
        what = (
            ", ".join(f"{s} {n}" for s, n in self.rows.items()) if self.rows else f"{len(self.files)} file(s)"
        )
        return f"{self.repo_type} folder {self.path}: {what} ({', '.join(self.files)})"


def check_repo_id(repo_id: str) -> str:
    """`ORG/NAME` as the Hub spells repo ids."""
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise UserInputError(f"--hub must be ORG/NAME (letters, digits, - _ .), got {repo_id!r}")
    return repo_id


def _empty_folder(out_dir: str | os.PathLike) -> Path:
    path = Path(out_dir).expanduser()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserInputError(f"{path} exists and is not an empty folder; pick a new folder for the upload")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# -- dataset ----------------------------------------------------------------------------------


def build_dataset_folder(
    store: Store,
    out_dir: str | os.PathLike,
    filters: ExportFilters | None = None,
    *,
    name: str,
    private: bool = True,
    license: str = "other",
    pretty_name: str | None = None,
    real_names: bool = False,
    secret: bytes | None = None,
) -> HubFolder:
    """Write what the Hub expects for a dataset: data/<split>-00000-of-00001.parquet and a README.md card.

    People's logins become stable pseudonyms (an HMAC under the install secret) unless `real_names`.
    """
    import pyarrow.parquet as pq

    filters = filters or ExportFilters()
    if not real_names:
        secret = secret if secret is not None else store_secret(store)
    chosen = select(store, filters, real_names=real_names, secret=secret)
    if not chosen.records:
        raise UserInputError(nothing_to_export(chosen, filters))
    root = _empty_folder(out_dir)
    splits = []
    for split in values(Split):
        records = [r for r in chosen.records if r["split"] == split]
        if not records:
            continue  # a config naming a split with no files fails to load on the Hub
        table = arrow_table(records)
        # One shard per split: the name still follows the Hub's <split>-XXXXX-of-NNNNN convention.
        path = root / "data" / f"{split}-00000-of-00001.parquet"
        write_atomic(path, lambda tmp, table=table: pq.write_table(table, tmp))
        splits.append((split, len(records), int(table.nbytes), path.stat().st_size))
    if not real_names and filters.annotators:  # the card describes the filters: no login there either
        filters = replace(filters, annotators=tuple(pseudonym(secret, a) for a in filters.annotators))
    card = _dataset_card(store, chosen, filters, splits, name=name, license=license, pretty_name=pretty_name)
    write_atomic(root / "README.md", lambda tmp: tmp.write_text(card, encoding="utf-8"))
    folder = HubFolder(root, "dataset", _listing(root), {s: n for s, n, _, _ in splits})
    log.info("built %s (private=%s)", folder.summary(), private)
    return folder


def _dataset_card(store, chosen, filters, splits, *, name: str, license: str, pretty_name: str | None) -> str:
    import datasets
    from huggingface_hub import DatasetCardData

    from annotate.stats import labelling_stats

    from .export import arrow_schema

    features = datasets.Features.from_arrow_schema(arrow_schema())
    total = sum(n for _, n, _, _ in splits)
    data = DatasetCardData(
        license=license,
        task_categories=["text-generation"],
        size_categories=[size_category(total)],
        tags=DATASET_TAGS,
        pretty_name=pretty_name or name.split("/")[-1],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*"} for s, _, _, _ in splits],
            }
        ],
        dataset_info={
            "features": features._to_yaml_list(),
            "splits": [{"name": s, "num_bytes": nbytes, "num_examples": n} for s, n, nbytes, _ in splits],
            "download_size": sum(size for *_, size in splits),
            "dataset_size": sum(nbytes for _, _, nbytes, _ in splits),
        },
    )
    frame = chosen.frame
    pair_ids = set(int(p) for p in frame["pair_id"])
    labels, verdicts = store.label_frame(), store.verdict_frame()
    # Agreement over the exported pairs only, so the card describes this dataset, not the whole database.
    stats = labelling_stats(
        labels[labels["pair_id"].isin(pair_ids)], verdicts[verdicts["pair_id"].isin(pair_ids)]
    )
    names = sorted(set(frame["chosen_model"]) | set(frame["rejected_model"]))
    card = dataset_card(
        yaml_text=data.to_yaml(),
        title=pretty_name or name.split("/")[-1],
        repo_id=name,
        frame=frame,
        by_split={s: n for s, n, _, _ in splits},
        filters=filters,
        dropped=chosen.dropped,
        stats=stats,
        models=store.models_by_name(names),
        rubrics=_known_rubrics(),
    )
    return mask_secrets(card)


def _known_rubrics() -> dict[str, str]:
    """Rubric hash -> text for the rubrics PrefLab ships (verdicts store only the hash)."""
    from models.judge_rubric import DEFAULT_RUBRIC, default_rubric, rubric_hash

    return {rubric_hash(text): text for text in (default_rubric(), DEFAULT_RUBRIC)}


# -- adapter ----------------------------------------------------------------------------------


def build_adapter_folder(
    store: Store,
    run_id: int,
    out_dir: str | os.PathLike,
    *,
    name: str | None = None,
    dataset_repo: str | None = None,
    license: str | None = None,
) -> HubFolder:
    """Write a trained adapter's files (from runs.adapter_path) plus a model card with lineage and evals."""
    from huggingface_hub import ModelCardData

    run = store.run_lineage(int(run_id))
    if run is None:
        raise UserInputError(f"no training run #{run_id}; see the Train tab or `launch.py stats`")
    if run["status"] != JobStatus.DONE:
        raise UserInputError(
            f"run #{run_id} is {run['status']}; only a finished run's adapter can be published"
        )
    source = Path(run["adapter_path"] or "")
    if not run["adapter_path"] or not (source / "adapter_config.json").is_file():
        raise UserInputError(f"run #{run_id}: no adapter at {source} (adapter_config.json missing)")
    root = _empty_folder(out_dir)
    for path in sorted(source.iterdir()):
        # Top-level files only: checkpoints in sub-folders hold optimizer state, not the adapter.
        if path.is_file() and not path.name.startswith(".") and not _SKIP_ADAPTER_FILES.match(path.name):
            shutil.copy2(path, root / path.name)
    base = run.get("base")
    variants = store.variants_of_run(int(run_id), run["adapter_path"])
    data = ModelCardData(
        library_name="peft",
        base_model=base if base and not looks_local(base) else None,
        datasets=[dataset_repo] if dataset_repo else None,
        license=license,
        pipeline_tag="text-generation",
        tags=ADAPTER_TAGS,
    )
    card = model_card(
        yaml_text=data.to_yaml(),
        title=(name or f"preflab-dpo-run-{run_id}").split("/")[-1],
        repo_id=name,
        run=run,
        variants=variants,
        evaluation=store.latest_eval(variants),
        dataset_repo=dataset_repo,
    )
    write_atomic(root / "README.md", lambda tmp: tmp.write_text(mask_secrets(card), encoding="utf-8"))
    folder = HubFolder(root, "model", _listing(root), {})
    log.info("built %s", folder.summary())
    return folder


# -- upload -----------------------------------------------------------------------------------


def make_hf_api() -> Any:
    """The real Hub client: the one place it is built (tests inject a fake with the same two methods)."""
    from huggingface_hub import HfApi

    return HfApi(library_name="preflab")


def hub_token() -> str | None:
    """HF_TOKEN, else the user's saved login; read when needed, never stored or logged."""
    from huggingface_hub import get_token

    token = os.environ.get("HF_TOKEN", "").strip()
    return token or get_token()


def require_token(token: str | None) -> str:
    """The token to push with, or one line saying how to get one (offline mode named first)."""
    if token:
        return token
    if hub_offline():
        raise PrefLabError(_OFFLINE)
    raise UserInputError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (or use --dry-run DIR)")


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


_OFFLINE = "cannot push to the Hub: offline mode is on (HF_HUB_OFFLINE=1); unset it, or write the folder with --dry-run DIR"


def push_folder(
    api: Any,
    repo_id: str,
    folder: str | os.PathLike,
    *,
    repo_type: str,
    private: bool,
    token: str | None,
    commit_message: str = "Upload from PrefLab",
) -> str:
    """Create the repo if needed and upload the folder as one commit; any failure is one line."""
    check_repo_id(repo_id)
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, token=token)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type=repo_type,
            token=token,
            commit_message=commit_message,
        )
    except PrefLabError:
        raise
    except Exception as exc:  # noqa: BLE001 - the Hub client raises HTTP, OS and offline errors alike
        raise PrefLabError(_push_error(exc, repo_id, token)) from None
    url = (
        getattr(info, "commit_url", None)
        or f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
    )
    log.info("pushed %s to %s", folder, repo_id)
    return str(url)


def _push_error(exc: BaseException, repo_id: str, token: str | None) -> str:
    if type(exc).__name__ == "OfflineModeIsEnabled" or hub_offline():
        return _OFFLINE
    text = first_line(exc)
    if token:
        text = text.replace(token, "***")  # an error must not echo the credential it was called with
    return f"cannot push to {repo_id} on the Hub: {mask_secrets(text)}"


def _publish(
    repo_id: str,
    build: Callable[[Path], HubFolder],
    *,
    private: bool,
    api: Any,
    token: str | None,
) -> tuple[HubFolder, str]:
    """Check the repo id and the token, `build` the folder in a temporary place, push it; the folder and URL."""
    check_repo_id(repo_id)
    token = require_token(token if token is not None else hub_token())
    with tempfile.TemporaryDirectory(prefix="preflab-hub-") as tmp:
        folder = build(Path(tmp))
        url = push_folder(
            api if api is not None else make_hf_api(),
            repo_id,
            folder.path,
            repo_type=folder.repo_type,
            private=private,
            token=token,
        )
    return folder, url


def publish_dataset(
    store: Store,
    repo_id: str,
    filters: ExportFilters | None = None,
    *,
    private: bool = True,
    api: Any = None,
    token: str | None = None,
    license: str = "other",
    real_names: bool = False,
) -> tuple[HubFolder, str]:
    """Build the dataset folder in a temporary place and push it (private unless asked); returns it and the URL."""

    def build(tmp: Path) -> HubFolder:
        return build_dataset_folder(
            store,
            tmp / "dataset",
            filters,
            name=repo_id,
            private=private,
            license=license,
            real_names=real_names,
        )

    return _publish(repo_id, build, private=private, api=api, token=token)


def publish_adapter(
    store: Store,
    run_id: int,
    repo_id: str,
    *,
    private: bool = True,
    api: Any = None,
    token: str | None = None,
    dataset_repo: str | None = None,
    license: str | None = None,
) -> tuple[HubFolder, str]:
    """Build the adapter folder in a temporary place and push it as a model repo."""

    def build(tmp: Path) -> HubFolder:
        return build_adapter_folder(
            store, run_id, tmp / "adapter", name=repo_id, dataset_repo=dataset_repo, license=license
        )

    return _publish(repo_id, build, private=private, api=api, token=token)
