"""Page assets: a local MathJax when wanted, no duplicated scripts, the course's CSS, a real index.

1. Serve MathJax from a local copy when ``$BOOK_MATHJAX_STATIC`` names one.

The published book loads MathJax from its CDN (Sphinx's default). A machine without internet
access (CI, the browser check) sets ``BOOK_MATHJAX_STATIC`` to a folder that holds
``mathjax/tex-chtml.js`` (MathJax 3's ``es5`` build, e.g. from ``npm install mathjax@3``); that
folder is copied into ``_static`` and the pages load MathJax from there.

2. Drop repeated script tags. sphinx-thebe adds its inline configuration script (``const
THEBE_JS_URL = ...``) from an event that fires twice in a Jupyter Book build, and the second
copy is a JavaScript error on every page ("Identifier 'THEBE_JS_URL' has already been declared").

3. Add the course's own layout CSS, ``book/_static/course.css`` (dark-mode figures, the results
table) and ``course.js`` (a Markdown table too wide for a phone becomes cards), with
``book/_static`` as a static folder, and ``book/_templates`` (two theme components
redone for accessibility; each file says why) as a template folder.

4. Write ``index.html`` as a small but complete page that forwards to the first chapter.
sphinx-external-toc otherwise writes a bare ``<meta http-equiv="Refresh">`` line: no language, no
title and no icon, so a browser asks the server for ``/favicon.ico`` (a 404 logged as a console
error whenever the request finishes before the redirect; the browser check failed on it now and
then).

5. Give citations the ARIA role ``listitem``. docutils 0.21 writes each one as
``<div role="doc-biblioentry">`` inside ``<div role="list">``; DPUB-ARIA 1.1 deprecated that
role, and a list whose children are not list items is a critical accessibility violation (axe:
aria-required-children) on the references page.
"""

from __future__ import annotations

import os
import html
from pathlib import Path

from sphinx.errors import ConfigError

STATIC = Path(__file__).resolve().parents[1] / "_static"
TEMPLATES = Path(__file__).resolve().parents[1] / "_templates"
CSS = "course.css"
JS = "course.js"  # wide tables as cards on a phone


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


def add_course_folders(app, config) -> None:
    # Another entry may name the same folder (e.g. "book/_static" in _config.yml): list it once.
    listed = {(Path(app.confdir) / p).resolve() for p in config.html_static_path}
    if STATIC not in listed:
        config.html_static_path = [*config.html_static_path, str(STATIC)]
    listed = {(Path(app.confdir) / p).resolve() for p in config.templates_path}
    if TEMPLATES not in listed:
        # First, so that these components replace the theme's own.
        config.templates_path = [str(TEMPLATES), *config.templates_path]


def fix_citation_roles(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body")
    if body and 'role="doc-biblioentry"' in body:
        context["body"] = body.replace('role="doc-biblioentry"', 'role="listitem"')


def write_index_redirect(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    if app.config.root_doc == "index":
        return  # the root document is the index page itself
    target = app.builder.get_target_uri(app.config.root_doc)
    icon = app.config.html_favicon
    icon_link = ""
    if icon:
        href = icon if "://" in icon else f"_static/{Path(icon).name}"
        icon_link = f'<link rel="icon" href="{html.escape(href)}">\n'
    title = html.escape(app.config.html_title or app.config.project)
    url = html.escape(target)
    page = (
        "<!DOCTYPE html>\n"
        f'<html lang="{html.escape(app.config.language or "en")}">\n'
        '<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n"
        f'<meta http-equiv="refresh" content="0; url={url}">\n'
        f'<link rel="canonical" href="{url}">\n'
        f"{icon_link}</head>\n"
        f'<body><p><a href="{url}">{title}</a></p></body>\n</html>\n'
    )
    (Path(app.outdir) / "index.html").write_text(page, encoding="utf-8")


def setup(app):
    app.connect("config-inited", use_local_copy)
    app.connect("config-inited", add_course_folders)
    app.connect("html-page-context", drop_repeated_scripts)
    app.connect("html-page-context", fix_citation_roles)
    app.add_css_file(CSS)
    app.add_js_file(JS, loading_method="defer")
    # Before sphinx-external-toc's handler (priority 500), which keeps an existing index.html.
    app.connect("build-finished", write_index_redirect, priority=400)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
