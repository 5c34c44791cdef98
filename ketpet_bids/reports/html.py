"""Small HTML building blocks shared by the participant and group reports.

Pages are self-contained: inline CSS, no JavaScript, and only relative links to local files.
All text is escaped here, so callers pass plain strings.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ketpet_bids.bids.sink import write_with

_CSS = """
body { font-family: sans-serif; max-width: 1100px; margin: 1em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #446; } h2 { border-bottom: 1px solid #99a; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccd; padding: 2px 8px; text-align: left; }
th { background: #eef; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #444; }
pre { background: #f6f6f8; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
.missing { color: #8a5300; } .error { color: #b00020; }
nav a { margin-right: 1em; }
"""


def esc(value: Any) -> str:
    """HTML-escape a value; floats with 6 significant digits (no binary-rounding noise).

    >>> esc(514429999.99999994), esc("<b>")
    ('5.1443e+08', '&lt;b&gt;')
    """
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return html.escape(text, quote=True)


def page(title: str, sections: Iterable[tuple[str, str, str]]) -> str:
    """A full HTML document.

    Parameters
    ----------
    title
        Page title and top heading.
    sections
        (anchor id, heading, body HTML) triples, in order; a navigation bar links them.
    """
    sections = list(sections)
    nav = "".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in sections)
    body = "\n".join(f'<section id="{esc(a)}"><h2>{esc(h)}</h2>\n{b}</section>'
                     for a, h, b in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n"
            f"<body><h1>{esc(title)}</h1><nav>{nav}</nav>\n{body}\n</body></html>\n")


def table(frame: pd.DataFrame) -> str:
    """A pandas table as HTML (escaped, 4 significant digits, ``n/a`` for missing)."""
    return frame.to_html(index=False, border=0, na_rep="n/a", escape=True,
                         float_format=lambda v: f"{v:.4g}")


def mapping_table(values: Mapping[str, Any]) -> str:
    """Two-column table of keys and values."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in values.items())
    return f"<table>{rows}</table>"


def figure(relative: Path, caption: str) -> str:
    """An ``<img>`` of a local file given relative to the page, with a caption."""
    return (f'<figure><img src="{esc(relative.as_posix())}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def paragraph(text: str, css: str = "") -> str:
    """A ``<p>`` with an optional CSS class (``missing`` or ``error``)."""
    cls = f' class="{css}"' if css else ""
    return f"<p{cls}>{esc(text)}</p>"


def bullet_list(items: Iterable[str], css: str = "") -> str:
    """A ``<ul>`` of escaped items (empty string when there are none)."""
    items = list(items)
    cls = f' class="{css}"' if css else ""
    return f"<ul{cls}>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>" if items else ""


def preformatted(text: str) -> str:
    """A ``<pre>`` block."""
    return f"<pre>{esc(text)}</pre>"


def write_page(target: Path, text: str) -> Path:
    """Write an HTML page atomically."""
    return write_with(Path(target), lambda tmp: tmp.write_text(text, encoding="utf-8"))
