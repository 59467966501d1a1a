"""Hostile strings for the robustness tests: XSS payloads that mark the page when they run or get injected."""

from __future__ import annotations

import re

# Each payload, if it ran, bumps window.__xss (or opens a dialog); if its markup got into the DOM, an element with
# one of the `xss-*` ids below appears. Together they cover script tags, event handlers on img/svg/details/input/
# media, javascript: URLs (links, iframes, objects, forms, meta refresh, base), iframe srcdoc, markdown link and
# image injection, HTML entities, broken-up and nested tags, mutation XSS, style/CSS injection, unicode tricks
# (RTL override, zero-width, full-width brackets), template and LaTeX injection, and quote/backtick breakouts.
XSS = [
    '<script id="xss-script">window.__xss=(window.__xss||0)+1</script>',
    '<img id="xss-img" src=x onerror="window.__xss=(window.__xss||0)+1">',
    "<img src=x onerror=alert(1)>",
    '<svg id="xss-svg" onload="window.__xss=(window.__xss||0)+1"><circle r="1"/></svg>',
    '<iframe id="xss-iframe" src="javascript:parent.__xss=(parent.__xss||0)+1"></iframe>',
    '<iframe id="xss-srcdoc" srcdoc="&lt;script&gt;parent.__xss=1&lt;/script&gt;"></iframe>',
    '<a id="xss-link" href="javascript:window.__xss=1">click me</a>',
    "[markdown link](javascript:window.__xss=1) and [data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '![markdown image](x" onerror="window.__xss=1) ![img2](javascript:window.__xss=1)',
    '<details id="xss-details" open ontoggle="window.__xss=(window.__xss||0)+1">toggle</details>',
    '<input id="xss-input" autofocus onfocus="window.__xss=(window.__xss||0)+1">',
    '<div id="xss-style" style="position:fixed;inset:0;z-index:99999;background:red">covers the page</div>',
    '<style id="xss-css">body { display: none !important }</style>',
    '<object id="xss-object" data="javascript:window.__xss=1"></object><embed id="xss-embed" src="javascript:1">',
    '<math><mtext><table><mglyph><style><img id="xss-mxss" src=x onerror="window.__xss=1">',
    '&lt;img src=x onerror="window.__xss=1"&gt; &#60;script&#62;window.__xss=1&#60;/script&#62; &amp;lt;b&amp;gt;',
    '<scr<script>ipt>window.__xss=1</scr</script>ipt><b id="xss-nested">nested</b>',
    '"><img id="xss-quote" src=x onerror="window.__xss=1"><"',
    '`<img id="xss-backtick" src=x onerror="window.__xss=1">` ``<b id="xss-code">x</b>``',
    '\u202e<img id="xss-rtl" src=x onerror="window.__xss=1">\u200b\u2066zero\u200dwidth',
    "\uff1cscript\uff1ewindow.__xss=1\uff1c/script\uff1e \u0000nul",
    '<meta id="xss-meta" http-equiv="refresh" content="0;url=javascript:window.__xss=1">',
    '<form id="xss-form" action="javascript:window.__xss=1"><button id="xss-button">go</button></form>',
    '<video id="xss-video"><source onerror="window.__xss=1"></video><audio src=x onerror="window.__xss=1">',
    '{{constructor.constructor("window.__xss=1")()}} ${window.__xss=1}',
    "$$\\href{javascript:window.__xss=1}{latex link}$$",
    '<base id="xss-base" href="javascript:window.__xss=1//"><link rel="stylesheet" href="javascript:1">',
    "<body onload=\"window.__xss=1\"><marquee id='xss-marquee' onstart='window.__xss=1'>m</marquee>",
]

# Variant names are free text (`launch.py models add NAME`): two hostile ones for the arena, eval and train tabs.
VARIANT_A = '<img id="xss-va" src=x onerror="window.__xss=1">`a`'
VARIANT_B = "**B**<script>window.__xss=1</script>[b](javascript:window.__xss=1)<b id='xss-vb'>b</b>"

# Ids the payloads carry: none of them may exist in the rendered page.
XSS_IDS = sorted(set(re.findall(r"""id=["']?(xss-[a-z]+)""", "".join([*XSS, VARIANT_A, VARIANT_B]))))

ALL = "\n".join(XSS)

# Run in the page: everything that would show a payload ran or was injected, as a list of findings.
DOM_CHECK = """
([ids, scope]) => {
  const found = [];
  const where = (el) => {
    let up = el.parentElement;
    while (up && !(up.id && !up.id.startsWith('xss-'))) up = up.parentElement;
    return up ? ' in #' + up.id : '';
  };
  if (window.__xss !== undefined) found.push('window.__xss = ' + window.__xss);
  const roots = scope ? [...document.querySelectorAll(scope)] : [document];
  const all = [];
  while (roots.length) {
    const root = roots.pop();
    for (const el of root.querySelectorAll('*')) {
      all.push(el);
      if (el.shadowRoot) roots.push(el.shadowRoot);
    }
  }
  for (const id of ids) {
    const el = all.find((e) => e.id === id);
    if (el) found.push('element #' + id + where(el));
  }
  for (const el of all) {
    const tag = el.tagName.toLowerCase();
    if (tag === 'script' && /__xss|alert\\(/.test(el.textContent)) found.push('script: ' + el.textContent.slice(0, 60));
    if (tag === 'style' && /body \\{ display: none/.test(el.textContent)) found.push('injected style' + where(el));
    if (tag === 'meta' && (el.getAttribute('http-equiv') || '').toLowerCase() === 'refresh') found.push('meta refresh');
    if (tag === 'iframe' && el.hasAttribute('srcdoc')) found.push('iframe srcdoc');
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      const value = attr.value.replace(/[\\s\\u0000-\\u001f]/g, '').toLowerCase();
      if (name.startsWith('on') && /__xss|alert/.test(attr.value)) found.push(tag + ' ' + name + '=' + attr.value.slice(0, 40));
      if (['href', 'src', 'data', 'action', 'formaction', 'xlink:href'].includes(name)
          && (value.startsWith('javascript:') || value.startsWith('data:text/html'))) {
        found.push(tag + ' ' + name + '=' + attr.value.slice(0, 40) + where(el));
      }
    }
  }
  return found;
}
"""


def dom_findings(page, scope: str | None = None) -> list[str]:
    """What of the payloads ran, or got into the DOM under `scope` (a CSS selector; default the whole page)."""
    return page.evaluate(DOM_CHECK, [XSS_IDS, scope])
