"""The Annotate tab: label preference pairs by button or keyboard, with the judge's suggestion."""

from __future__ import annotations

import html
import time

import gradio as gr

from annotate.labelling import (
    MAX_EDIT_CHARS,
    MAX_NOTE_CHARS,
    AlreadyLabelledError,
    NothingToUndoError,
    Screen,
)
from annotate.models_service import VariantInfo, list_variants
from annotate.service import AnnotateService
from context import Context
from errors import PrefLabError
from limits import MAX_ITEMS, MAX_NEW_TOKENS
from safe_text import md_text
from ui_common import counts_line, empty_state, int_field, name_field, warn

VOTE_BUTTONS = (
    ("A", "vote-a", "A is better  [1]", "primary"),
    ("B", "vote-b", "B is better  [2]", "primary"),
    ("tie", "vote-tie", "Tie  [3]", "secondary"),
    ("both_bad", "vote-both-bad", "Both bad  [4]", "secondary"),
    ("skip", "vote-skip", "Skip  [s]", "secondary"),
)
KEY_HELP = (
    "Keys: `1` A better · `2` B better · `3` tie · `4` both bad · `s` skip · `u` undo (not while typing)"
)
# Votes from several annotators must not queue behind one worker; DuckDB serialises the writes anyway.
VOTE_CONCURRENCY = 16
# How many of this page's votes `u` can take back, newest first.
MAX_UNDO = 100


def annotate_empty_state(counts: dict[str, int], has_sft: bool = False) -> str:
    """What the Annotate tab tells a user who has nothing to label yet; every step is done in this page."""
    steps = []
    if counts.get("prompts", 0) == 0:
        steps.append(
            "Import prompts: **Data** tab → *Load the demo prompts*, or upload your file there "
            "(JSONL, CSV, Parquet)."
        )
    if counts.get("pairs", 0) == 0:
        if not has_sft:
            steps.append(
                "Get an SFT model: **Train** tab → *Demo SFT*, or register yours in **Data** → *Models* (admin)."
            )
        steps.append("Generate two responses per prompt: pick the variant below, then **Generate pairs**.")
    else:
        steps.append("Every pair has a label: generate more below, or train on them in **Train**.")
    steps.append("Label them here. Keys: `1` A, `2` B, `3` tie, `4` both bad, `s` skip, `u` undo.")
    title = "Nothing to label yet" if counts.get("pairs", 0) == 0 else "All pairs are labelled"
    return empty_state(title, steps) + f"\n\n<small>{counts_line(counts)}</small>"


GET_SFT = "**Train** tab → *Demo SFT* (registered as `sft`), or register yours in **Data** → *Models* (admin)"


def variant_note(info: VariantInfo | None) -> str:
    """What the Generate pairs picker says about the chosen variant: where it runs, and what a baseline is for."""
    if info is None:
        return (
            f"Pick the variant that writes the responses. Your SFT model: {GET_SFT}; `base` gives a baseline."
        )
    name = f"**{md_text(info.name)}**"
    if info.on_endpoint:
        return f"{name} generates on its server ({md_text(info.where)}), not in this process."
    if info.kind == "base" and info.name != "sft":
        return (
            f"{name} is a base model: its responses are for a baseline. Pairs for DPO on top of your SFT model "
            f"come from `sft`: {GET_SFT}."
        )
    return f"{name} generates in {md_text(info.where)}."


def render_prompt(messages: list[dict]) -> str:
    """A chat prompt as plain text (the Textbox shows it escaped)."""
    if len(messages) == 1:
        return str(messages[0].get("content", ""))
    return "\n\n".join(f"[{m.get('role', '?')}]\n{m.get('content', '')}" for m in messages)


def shown_suggestion(screen: Screen | None, hide: bool) -> str | None:
    """The suggestion the page displays, in screen terms ('A', 'B', 'tie'); None when it shows none.

    The page keeps this and sends it with the vote, so a verdict that lands after the page was drawn (a retry
    that succeeded, a pending judge) is never recorded as one the person saw.
    """
    if screen is None or hide or screen.suggestion_hidden or screen.verdict is None:
        return None
    if screen.verdict.status == "abstained":
        return None
    return screen.suggestion_side


def suggestion_html(screen: Screen, hide: bool) -> tuple[str, str]:
    """(headline HTML, rationale text); everything from a model or a file is escaped."""
    if screen.verdict is not None and screen.verdict.status == "abstained":
        # Nothing to show or hide: say so, and how to get a judge that applies, instead of a suggestion.
        return (
            f"<div class='judge-none'>No judge applies to this pair: {html.escape(screen.verdict.error or '')} "
            "To get suggestions on any data, set <code>ANTHROPIC_API_KEY</code> and restart PrefLab.</div>",
            "",
        )
    if hide or screen.suggestion_hidden:
        why = "you chose to hide it" if hide else "withheld for this pair to measure unprimed agreement"
        return f"<div class='judge-hidden'>Judge suggestion hidden ({html.escape(why)}).</div>", ""
    if screen.verdict is None:
        return f"<div class='judge-pending'>{html.escape(screen.judge_label)} is judging this pair…</div>", ""
    headline, rationale = screen.verdict.display()
    side = screen.suggestion_side
    if side in ("A", "B"):
        # display() speaks of the screen's A/B already: the judge was asked in screen order.
        cls = "judge-ok"
    elif side == "tie":
        cls = "judge-ok"
    else:
        cls = "judge-unsure" if screen.verdict.status == "unsure" else "judge-failed"
    return f"<div class='{cls}'>{html.escape(headline)}</div>", rationale


def progress_text(screen: Screen | None, counts: dict[str, int], annotator: str) -> str:
    if screen is None:
        return f"**{md_text(annotator)}** · {counts.get('pairs', 0)} pairs in the queue"
    return (
        f"**{md_text(annotator)}**: {screen.mine} labelled · team: {screen.labelled_pairs}/{screen.total} "
        f"pairs labelled · pair #{screen.pair_id}"
    )


def build_annotate_tab(ctx: Context, demo: gr.Blocks, *, tab: gr.Tab | None = None) -> AnnotateService:
    """Widgets and events of the Annotate tab; `tab` refreshes them when it is selected."""
    svc = AnnotateService(ctx)
    svc.resume_interrupted()
    state = gr.State({"pair_id": None, "shown_at": 0.0, "pending": False, "undo": []})

    with gr.Row():
        annotator = name_field(
            "annotator", "annotator", info="Ignored when the server runs with --auth: your login is used."
        )
        progress = gr.Markdown(elem_id="progress")
    with gr.Column(visible=True) as empty_col:
        empty_md = gr.Markdown(elem_id="annotate-empty", elem_classes=["empty-state"])
    with gr.Column(visible=False) as pair_col:
        prompt = gr.Textbox(label="Prompt", elem_id="prompt", interactive=False, lines=3, max_lines=14)
        with gr.Row(equal_height=True):
            resp_a = gr.Textbox(
                label="Response A", elem_id="response-a", interactive=False, lines=8, max_lines=30
            )
            resp_b = gr.Textbox(
                label="Response B", elem_id="response-b", interactive=False, lines=8, max_lines=30
            )
        with gr.Row():
            suggestion = gr.HTML(elem_id="judge-suggestion")
            hide = gr.Checkbox(label="Hide judge suggestion", value=False, elem_id="hide-suggestion", scale=0)
        rationale = gr.Textbox(label="Judge rationale", elem_id="judge-rationale", interactive=False, lines=2)
        with gr.Row():
            buttons = {
                side: gr.Button(text, elem_id=eid, variant=variant, size="lg")
                for side, eid, text, variant in VOTE_BUTTONS
            }
            undo = gr.Button("Undo  [u]", elem_id="undo", variant="stop", size="lg")
        with gr.Accordion("Note and edit (optional)", open=False):
            note = gr.Textbox(label="Note", elem_id="note", lines=1, max_length=MAX_NOTE_CHARS)
            edit = gr.Textbox(
                label="Edit the chosen response (stored as an edit; the original is kept)",
                elem_id="chosen-edit",
                lines=4,
                max_length=MAX_EDIT_CHARS,
            )
        gr.Markdown(KEY_HELP, elem_classes=["kbd-help"])
    with gr.Row():
        # Filled on load and on select, never in the page's config (names are untrusted text). Custom values
        # allowed: the service checks the name, and a page older than a new variant still works.
        variant = gr.Dropdown(
            choices=[],
            value=None,
            label="Variant that writes the responses",
            elem_id="generate-variant",
            allow_custom_value=True,
            scale=2,
        )
        gen_limit = int_field(
            "At most N prompts (0: every train prompt)",
            "generate-limit",
            0,
            minimum=0,
            maximum=MAX_ITEMS,
            scale=1,
        )
        gen_tokens = int_field(
            "Max new tokens", "generate-max-tokens", 256, minimum=1, maximum=MAX_NEW_TOKENS, scale=1
        )
    gen_note = gr.Markdown(elem_id="generate-note")
    with gr.Row():
        generate = gr.Button(
            "Generate pairs", elem_id="generate", variant="secondary", scale=0, min_width=200
        )
        cancel = gr.Button("Cancel generation", elem_id="cancel-generation", scale=0, min_width=200)
        gen_status = gr.Markdown(elem_id="generation-status")
    timer = gr.Timer(2.0)

    pair_outputs = [
        state,
        progress,
        empty_col,
        empty_md,
        pair_col,
        prompt,
        resp_a,
        resp_b,
        suggestion,
        rationale,
    ]

    def who(name: str, request: gr.Request | None) -> tuple[str | None, str]:
        """(login, name shown): the service stores labels under the login when there is one."""
        user = getattr(request, "username", None) if request is not None else None
        return user, user or (name or "").strip()

    def show(screen: Screen | None, name: str, hide_value: bool, undo_ids: list[int] | None = None) -> dict:
        # `undo`: the labels this page stored, newest last; undo names the newest, never "the latest anywhere".
        undo_ids = list(undo_ids or [])[-MAX_UNDO:]
        if screen is None:
            # Counts only feed the empty state: a vote that shows the next pair never pays for them.
            counts = svc.counts()
            has_sft = ctx.store.get_model("sft") is not None
            return {
                state: {"pair_id": None, "shown_at": 0.0, "pending": False, "undo": undo_ids},
                progress: progress_text(None, counts, name),
                empty_col: gr.Column(visible=True),
                empty_md: annotate_empty_state(counts, has_sft),
                pair_col: gr.Column(visible=False),
                prompt: "",
                resp_a: "",
                resp_b: "",
                suggestion: "",
                rationale: "",
            }
        head, why = suggestion_html(screen, hide_value)
        return {
            state: {
                "pair_id": screen.pair_id,
                "shown_at": time.time(),
                "pending": screen.verdict is None,
                "suggested": shown_suggestion(screen, hide_value),
                "undo": undo_ids,
            },
            progress: progress_text(screen, {}, name),
            empty_col: gr.Column(visible=False),
            empty_md: "",
            pair_col: gr.Column(visible=True),
            prompt: render_prompt(screen.prompt),
            resp_a: screen.text_left,
            resp_b: screen.text_right,
            suggestion: head,
            rationale: why,
        }

    def on_load(name: str, hide_value: bool, request: gr.Request):
        user, name = who(name, request)
        try:
            return {**show(svc.current(name, username=user), name, hide_value), annotator: name}
        except PrefLabError as exc:
            warn(exc)
            return {**show(None, name, hide_value), annotator: name}

    def make_vote(side: str):
        def on_vote(
            name: str, st: dict, hide_value: bool, note_text: str, edit_text: str, request: gr.Request
        ):
            user, name = who(name, request)
            if st.get("pair_id") is None:
                return {state: gr.skip()}
            # What the page displayed when it was drawn, not whatever the judge says by now.
            shown = None if hide_value else st.get("suggested")
            undo_ids = st.get("undo") or []
            try:
                voted = svc.cast(
                    name,
                    st["pair_id"],
                    side,
                    username=user,
                    suggestion_shown=shown is not None,
                    shown_side=shown,
                    note=note_text,
                    chosen_edit=edit_text,
                    seconds_spent=round(time.time() - st.get("shown_at", time.time()), 2),
                )
            except AlreadyLabelledError as exc:
                # A stale page (second tab, double key press): say so, and show where this annotator really is.
                warn(exc)
                try:
                    return show(svc.current(name, username=user), name, hide_value, undo_ids)
                except PrefLabError as again:
                    warn(again)
                    return {state: gr.skip()}
            except PrefLabError as exc:
                warn(exc)
                return {state: gr.skip()}
            return {**show(voted.next, name, hide_value, [*undo_ids, voted.label_id]), note: "", edit: ""}

        return on_vote

    def on_undo(name: str, st: dict, hide_value: bool, request: gr.Request):
        user, name = who(name, request)
        undo_ids = list(st.get("undo") or [])
        try:
            screen = svc.undo(name, undo_ids[-1] if undo_ids else None, username=user)
        except NothingToUndoError as exc:
            warn(exc)  # already undone (in another tab, say): forget it, so the next `u` goes further back
            return {state: {**st, "undo": undo_ids[:-1]}}
        except PrefLabError as exc:
            warn(exc)
            return {state: gr.skip()}
        return {**show(screen, name, hide_value, undo_ids[:-1]), note: "", edit: ""}

    def on_hide(name: str, st: dict, hide_value: bool, request: gr.Request):
        user, name = who(name, request)
        if st.get("pair_id") is None:
            return {state: gr.skip()}
        try:
            screen = svc.refresh(name, st["pair_id"], username=user)
        except PrefLabError as exc:
            warn(exc)
            return {state: gr.skip()}
        return show(screen, name, hide_value, st.get("undo"))

    def picker(current: str | None) -> dict:
        """The variants that can generate; the current pick stays, else `sft` when it exists."""
        infos = list_variants(ctx, generating_only=True)
        names = [i.name for i in infos]
        value = current if current in names else ("sft" if "sft" in names else None)
        chosen = next((i for i in infos if i.name == value), None)
        return {variant: gr.Dropdown(choices=names, value=value), gen_note: variant_note(chosen)}

    def on_variants(current: str | None):
        return picker(current)

    def on_pick(current: str | None):
        chosen = next((i for i in list_variants(ctx) if i.name == current), None)
        return {gen_note: variant_note(chosen)}

    def on_select(name: str, st: dict, hide_value: bool, current: str | None, request: gr.Request):
        """The tab is shown again: fresh variants, job line and, when no pair is on screen, counts or a pair."""
        out = {**picker(current), gen_status: md_text(svc.generation_status().text)}
        if st.get("pair_id") is None:
            user, name = who(name, request)
            try:
                out.update(show(svc.current(name, username=user), name, hide_value, st.get("undo")))
            except PrefLabError:
                out.update(show(None, name, hide_value, st.get("undo")))  # on_load already warned
        return out

    def on_generate(current: str | None, limit_v, tokens_v, request: gr.Request):
        from annotate.generation import GenerateConfig

        try:
            cfg = GenerateConfig.from_values(
                variant=(current or "").strip(),
                limit=int(limit_v) if limit_v else None,
                max_new_tokens=int(tokens_v) if tokens_v else None,
            )
            job_id = svc.start_generation(cfg, username=getattr(request, "username", None))
        except PrefLabError as exc:
            warn(exc)
            return {gen_status: md_text(exc)}
        gr.Info(f"Generation job #{job_id} started; pairs appear as each batch finishes.")
        return {gen_status: md_text(svc.generation_status().text)}

    def on_cancel(request: gr.Request):
        try:
            if svc.cancel_generation(username=getattr(request, "username", None)):
                gr.Info("Cancelling after the current batch.")
        except PrefLabError as exc:
            warn(exc)
        return {gen_status: md_text(svc.generation_status().text)}

    def on_tick(name: str, st: dict, hide_value: bool, request: gr.Request):
        """Poll: job progress always; the pair area only when a suggestion is pending or nothing is shown."""
        out = {gen_status: md_text(svc.generation_status().text)}
        user, name = who(name, request)
        try:
            if st.get("pair_id") is None:
                screen = svc.current(name, username=user)
                if screen is not None:
                    out.update(show(screen, name, hide_value, st.get("undo")))
            elif st.get("pending"):
                out.update(
                    show(svc.refresh(name, st["pair_id"], username=user), name, hide_value, st.get("undo"))
                )
        except PrefLabError:
            pass  # e.g. an empty name while the user types: the load/vote handlers report it
        return out

    inputs_vote = [annotator, state, hide, note, edit]
    for side, button in buttons.items():
        button.click(
            make_vote(side),
            inputs_vote,
            [*pair_outputs, note, edit],
            api_name=f"vote_{side.lower()}",
            concurrency_limit=VOTE_CONCURRENCY,
            concurrency_id="votes",
        )
    undo.click(
        on_undo,
        [annotator, state, hide],
        [*pair_outputs, note, edit],
        api_name="undo",
        concurrency_limit=VOTE_CONCURRENCY,
        concurrency_id="votes",
    )
    hide.change(on_hide, [annotator, state, hide], pair_outputs, api_name=False)
    annotator.submit(on_load, [annotator, hide], [*pair_outputs, annotator], api_name=False)
    generate.click(
        on_generate, [variant, gen_limit, gen_tokens], [gen_status], api_name="generate"
    )  # admin: checked in the service
    variant.change(on_pick, [variant], [gen_note], api_name=False)
    cancel.click(on_cancel, None, [gen_status], api_name=False)  # admin: checked in the service
    timer.tick(
        on_tick, [annotator, state, hide], [gen_status, *pair_outputs], api_name=False, concurrency_limit=None
    )
    demo.load(
        on_load, [annotator, hide], [*pair_outputs, annotator], api_name="next_pair", concurrency_limit=None
    )
    demo.load(on_variants, [variant], [variant, gen_note], api_name=False, concurrency_limit=None)
    if tab is not None:
        tab.select(
            on_select,
            [annotator, state, hide, variant],
            [variant, gen_note, gen_status, *pair_outputs],
            api_name=False,
            concurrency_limit=None,
        )
    return svc
