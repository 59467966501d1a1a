"""The `import` and `export` commands' bodies, for launch.py to wire: `cmd_*(args, ctx) -> exit code`."""

from __future__ import annotations

import argparse
import logging

from common.errors import UserInputError
from common.flags import Flag, add_flags
from common.progress import Bar
from common.vocab import ExportTies

from .export import EXPORT_FORMATS, ExportFilters, export_dataset
from .import_limits import ImportLimits, limit_flags_given

log = logging.getLogger(__name__)

EXIT_OK = 0
DEFAULT_DATASET_NAME = "preflab-preferences"


# The export flags that are not ExportFilters fields: (flag, argparse options).
EXPORT_OPTIONS = (
    ("--format", dict(choices=list(EXPORT_FORMATS), help="file format (default: from --output's suffix)")),
    ("--output", dict(metavar="PATH", help="write the triples to this .jsonl or .parquet file")),
    (
        "--hub",
        dict(metavar="ORG/NAME", help="publish to this Hugging Face repo (dataset, or model with --adapter)"),
    ),
    ("--public", dict(action="store_true", help="create the Hub repo as public (default: private)")),
    ("--private", dict(action="store_true", help="the default: create the Hub repo as private")),
    (
        "--real-names",
        dict(
            action="store_true",
            help="keep annotators' logins in the export (default: stable pseudonyms, annotator-<hmac>)",
        ),
    ),
    ("--dry-run", dict(metavar="DIR", help="write exactly the folder that would be uploaded, then stop")),
    (
        "--adapter",
        dict(metavar="RUN", help="publish run RUN's trained adapter with a model card (needs --hub)"),
    ),
    ("--license", dict(help="license for the Hub card (default: other for datasets, none for adapters)")),
    ("--dataset-repo", dict(metavar="ORG/NAME", help="with --adapter: the dataset repo the card links to")),
)
# The filter flags: help, defaults and choices are ExportFilters' fields (common.flags).
FILTER_FLAGS = (
    Flag("sources", "--source", repeat=True),
    Flag("annotators", "--annotator", repeat=True),
    Flag("since", metavar="YYYY-MM-DD"),
    Flag("until", metavar="YYYY-MM-DD"),
    Flag("agreement"),
    Flag("ties"),
)


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the export flags this module reads; flags the parser already has are left as they are."""
    have = set(parser._option_string_actions)  # argparse has no public "has option" query
    for flag, options in EXPORT_OPTIONS:
        if flag not in have:
            parser.add_argument(flag, **options)
    add_flags(parser, ExportFilters, [f for f in FILTER_FLAGS if f.option not in have])


def filters_from_args(args: argparse.Namespace) -> ExportFilters:
    """The export filters the flags ask for."""
    return ExportFilters(
        sources=tuple(getattr(args, "source", None) or ()),
        annotators=tuple(getattr(args, "annotator", None) or ()),
        since=getattr(args, "since", None),
        until=getattr(args, "until", None),
        agreement=getattr(args, "agreement", None) or "any",
        ties=getattr(args, "ties", None) or ExportTies.DROP.value,
    )


def cmd_export(args: argparse.Namespace, ctx) -> int:
    """`launch.py export`: a file (--output), a Hub dataset (--hub), or an adapter (--adapter RUN --hub)."""
    from . import hub

    store = ctx.store
    repo = getattr(args, "hub", None)
    dry_run = getattr(args, "dry_run", None)
    license = getattr(args, "license", None)
    if repo:
        hub.check_repo_id(repo)
    private = _private(args)
    real_names = bool(getattr(args, "real_names", False))
    shown = "private" if private else "public"
    if getattr(args, "adapter", None) is not None:
        run_id = _run_id(args.adapter)
        if not repo and not dry_run:
            raise UserInputError("--adapter needs --hub ORG/NAME (or --dry-run DIR to see the folder)")
        dataset_repo = getattr(args, "dataset_repo", None)
        if dry_run:
            folder = hub.build_adapter_folder(
                store, run_id, dry_run, name=repo, dataset_repo=dataset_repo, license=license
            )
            print(f"dry run: {folder.summary()}; nothing uploaded")
            return EXIT_OK
        _, url = hub.publish_adapter(
            store, run_id, repo, private=private, dataset_repo=dataset_repo, license=license
        )
        print(f"published run #{run_id}'s adapter to {repo} ({shown}): {url}")
        return EXIT_OK
    filters = filters_from_args(args)
    if repo or dry_run:
        if getattr(args, "output", None):
            raise UserInputError("give either --output PATH or --hub/--dry-run, not both")
        if dry_run:
            folder = hub.build_dataset_folder(
                store,
                dry_run,
                filters,
                name=repo or DEFAULT_DATASET_NAME,
                private=private,
                license=license or "other",
                real_names=real_names,
            )
            print(f"dry run: {folder.summary()}; nothing uploaded")
            return EXIT_OK
        folder, url = hub.publish_dataset(
            store, repo, filters, private=private, license=license or "other", real_names=real_names
        )
        rows = ", ".join(f"{s} {n}" for s, n in folder.rows.items())
        print(f"published {rows} to {repo} ({shown}): {url}")
        return EXIT_OK
    if not getattr(args, "output", None):
        raise UserInputError(
            "export needs --output PATH (.jsonl or .parquet), or --hub ORG/NAME, or --dry-run DIR"
        )
    report = export_dataset(
        store, args.output, format=getattr(args, "format", None), filters=filters, real_names=real_names
    )
    print(report.summary())
    return EXIT_OK


def _private(args: argparse.Namespace) -> bool:
    """Hub repos are private unless --public; --private stays accepted (it is the default)."""
    public = bool(getattr(args, "public", False))
    if public and getattr(args, "private", False):
        raise UserInputError("give --public or --private, not both (private is the default)")
    return not public


def _run_id(value) -> int:
    text = str(value).strip().lstrip("#")
    if "@" in text:  # a variant name such as sft+dpo@7 names its run after the @
        text = text.rsplit("@", 1)[1]
    try:
        return int(text)
    except ValueError:
        raise UserInputError(f"--adapter takes a run id (e.g. 3 or sft+dpo@3), got {value!r}") from None


def limits_from_args(args: argparse.Namespace) -> ImportLimits:
    """The import caps the flags ask for; a flag not given keeps its default."""
    return ImportLimits(**limit_flags_given(args))


def cmd_import_preferences(args: argparse.Namespace, ctx) -> int:
    """`launch.py import`: preference data in any supported format; prompt files go to the prompt importer."""
    from .pref_import import import_preferences, preview_preferences

    asked = fmt = getattr(args, "format", None) or "auto"
    limits = limits_from_args(args)
    options = dict(
        split=args.split,
        heldout_percent=args.heldout_percent,
        seed=args.seed,
        skip_bad=args.skip_bad,
        limits=limits,
    )
    if fmt != "prompts":
        preview = preview_preferences(args.source, 3, format=fmt, split=args.split, limits=limits)
        print(preview.text())
        fmt = preview.format
    bar = Bar("importing", "row")
    try:
        if fmt == "prompts":
            from .importer import import_prompts

            report = import_prompts(ctx.store, args.source, progress=bar, **options)
        else:
            report = import_preferences(ctx.store, args.source, format=asked, progress=bar, **options)
    finally:
        bar.close()
    print(report.summary())
    if getattr(args, "review", False) and fmt != "prompts":
        queued = ctx.store.queue_model_pairs_for_review(report.model)
        print(f"{queued} imported pair(s) queued for human review in Annotate")
    return EXIT_OK
