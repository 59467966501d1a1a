"""What browser tests do on a PrefLab page: wait for a text, pick a dropdown option, label pairs by keyboard."""

from __future__ import annotations


def textarea(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} textarea").input_value()


def wait_text(page, elem_id: str, needle: str, timeout: int = 30_000) -> None:
    """Wait until the element's text (or its textarea's value) contains `needle`."""
    page.wait_for_function(
        "([id, needle]) => { const el = document.getElementById(id); if (!el) return false;"
        " const box = el.querySelector('textarea'); return (box ? box.value : el.innerText).includes(needle); }",
        arg=[elem_id, needle],
        timeout=timeout,
    )


def pick(page, elem_id: str, option: str) -> None:
    """Choose an option of a Gradio dropdown by its text."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    # The option of this dropdown: another dropdown's list may still be in the page.
    page.locator(f"#{elem_id}").get_by_role("option", name=option, exact=True).click()
    page.wait_for_function(
        "([id, v]) => document.querySelector('#' + id + ' input').value === v", arg=[elem_id, option]
    )


def generate_pairs(page, variant: str, prompts: int, max_tokens: int, timeout: int = 180_000) -> None:
    """Annotate tab: pick the variant, generate pairs for `prompts` prompts, wait until the job is done and a pair is
    on screen."""
    page.get_by_role("tab", name="Annotate").click()
    pick(page, "generate-variant", variant)
    wait_text(page, "generate-note", variant)
    page.locator("#generate-limit input").fill(str(prompts))
    page.locator("#generate-max-tokens input").fill(str(max_tokens))
    page.locator("#generate").click()
    wait_text(page, "generation-status", "done", timeout=timeout)
    page.wait_for_function("document.querySelector('#response-a textarea').value.length > 0", timeout=60_000)


def label_by_keyboard(page, keys: str) -> int:
    """Press one key per pair on screen (1: A, 2: B, 3: tie) until the keys or the pairs run out; returns how many
    pairs were labelled, each seen replaced by the next before the next key."""
    page.locator("#progress").click()  # focus off the text boxes, where keys would type
    labelled = 0
    for key in keys:
        if page.locator("#response-a textarea").is_hidden():
            break
        before = textarea(page, "prompt"), textarea(page, "response-a")
        page.keyboard.press(key)
        page.wait_for_function(
            "([p, a]) => { const x = document.querySelector('#prompt textarea');"
            " const y = document.querySelector('#response-a textarea');"
            " return !x || x.offsetParent === null || x.value !== p || y.value !== a; }",
            arg=list(before),
            timeout=15_000,
        )
        labelled += 1
    return labelled
