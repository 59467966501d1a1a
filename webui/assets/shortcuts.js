// PrefLab keyboard shortcuts: 1/2 prefer A/B (left/right in the arena), 3 tie, 4 both bad,
// s skip, u undo. They act on the visible tab only (hidden tabs' buttons are not rendered
// visibly) and never while the user types in a text field.
(function () {
  const KEYS = {
    "1": ["vote-a", "arena-vote-left"],
    "2": ["vote-b", "arena-vote-right"],
    "3": ["vote-tie", "arena-vote-tie"],
    "4": ["vote-both-bad", "arena-vote-both-bad"],
    "s": ["vote-skip"],
    "u": ["undo"],
  };
  function typing(el) {
    if (!el) return false;
    const tag = (el.tagName || "").toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || el.isContentEditable;
  }
  function visible(el) {
    return !!el && el.offsetParent !== null && !el.disabled;
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
    if (typing(ev.target) || typing(document.activeElement)) return;
    const ids = KEYS[ev.key.toLowerCase()];
    if (!ids) return;
    for (const id of ids) {
      const host = document.getElementById(id);
      const btn = host && (host.tagName === "BUTTON" ? host : host.querySelector("button"));
      if (visible(btn)) {
        ev.preventDefault();
        btn.click();
        return;
      }
    }
  });
})();
