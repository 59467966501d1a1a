"""The Annotate tab: label preference pairs by button or keyboard, with the judge's suggestion.

The widgets and their events; what the page says is annotate/screen_text.py (its names re-exported here).
"""

from __future__ import annotations

import time

import gradio as gr

from annotate.generation import GenerateConfig
from annotate.labelling import (
    MAX_EDIT_CHARS,
    MAX_NOTE_CHARS,
    AlreadyLabelledError,
    NothingToUndoError,
    Screen,
)
from annotate.models_service import list_variants
from annotate.screen_text import (
    annotate_empty_state,
    progress_text,
    render_prompt,
    shown_suggestion,
    suggestion_html,
    variant_note,
)
from annotate.service import AnnotateService
from common.context import Context
from common.errors import PrefLabError
from common.limits import MAX_ITEMS, MAX_NEW_TOKENS
from common.safe_text import md_text
from common.vocab import Decision, Side
from webui.common import int_field, name_field, warn

VOTE_BUTTONS = (
    (Side.A, "vote-a", "A is better  [1]", "primary"),
    (Side.B, "vote-b", "B is better  [2]", "primary"),
    (Decision.TIE, "vote-tie", "Tie  [3]", "secondary"),
    (Decision.BOTH_BAD, "vote-both-bad", "Both bad  [4]", "secondary"),
    (Decision.SKIP, "vote-skip", "Skip  [s]", "secondary"),
)
KEY_HELP = (
    "Keys: `1` A better · `2` B better · `3` tie · `4` both bad · `s` skip · `u` undo (not while typing)"
)
# Votes from several annotators must not queue behind one worker; DuckDB serialises the writes anyway.
VOTE_CONCURRENCY = 16
# How many of this page's votes `u` can take back, newest first.
MAX_UNDO = 100


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
            "Max new tokens",
            "generate-max-tokens",
            GenerateConfig.max_new_tokens,
            minimum=1,
            maximum=MAX_NEW_TOKENS,
            scale=1,
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
