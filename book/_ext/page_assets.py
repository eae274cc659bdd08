"""Page assets: a local MathJax when wanted, and no duplicated scripts.

1. Serve MathJax from a local copy when ``$BOOK_MATHJAX_STATIC`` names one.

The published book loads MathJax from its CDN (Sphinx's default). A machine without internet
access (CI, the browser check) sets ``BOOK_MATHJAX_STATIC`` to a folder that holds
``mathjax/tex-chtml.js`` (MathJax 3's ``es5`` build, e.g. from ``npm install mathjax@3``); that
folder is copied into ``_static`` and the pages load MathJax from there.

2. Drop repeated script tags. sphinx-thebe adds its inline configuration script (``const
THEBE_JS_URL = ...``) from an event that fires twice in a Jupyter Book build, and the second
copy is a JavaScript error on every page ("Identifier 'THEBE_JS_URL' has already been declared").
"""

from __future__ import annotations

import os
from pathlib import Path

from sphinx.errors import ConfigError


def use_local_copy(app, config) -> None:
    folder = os.environ.get("BOOK_MATHJAX_STATIC")
    if not folder:
        return
    script = Path(folder) / "mathjax" / "tex-chtml.js"
    if not script.is_file():
        raise ConfigError(
            f"BOOK_MATHJAX_STATIC={folder} has no mathjax/tex-chtml.js; copy MathJax 3's es5 folder "
            "there as 'mathjax' (npm install mathjax@3), or unset the variable to use the CDN"
        )
    config.html_static_path = [*config.html_static_path, str(Path(folder).resolve())]
    config.mathjax_path = "mathjax/tex-chtml.js"


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # The copies differ only in an empty filename: None in one, "" in the other.
        key = (
            getattr(script, "filename", script) or "",
            tuple(sorted(getattr(script, "attributes", {}).items())),
        )
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("config-inited", use_local_copy)
    app.connect("html-page-context", drop_repeated_scripts)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
