"""MkDocs hook: render the math that `pymdownx.arithmatex` marks (generic mode) to MathML at build time.

The built site then needs no JavaScript and no network for math (browsers render MathML natively); a formula
that latex2mathml cannot convert stops the build with the page and the formula named.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
_BLOCK = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.S)


def render(text: str, where: str = "") -> str:
    """Replace arithmatex's `\\(...\\)` spans and `\\[...\\]` divs in `text` by MathML."""

    def sub(display: str):
        def f(m: re.Match) -> str:
            tex = html.unescape(m.group(1))
            try:
                return convert(tex, display=display)
            except Exception as exc:
                raise ValueError(f"{where}: cannot render the formula {tex!r} to MathML ({exc})") from exc

        return f

    return _INLINE.sub(sub("inline"), _BLOCK.sub(sub("block"), text))


def on_page_content(html_text: str, page, config, files) -> str:
    return render(html_text, page.file.src_path)
