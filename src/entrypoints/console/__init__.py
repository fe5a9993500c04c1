"""The web console: a server-rendered shell and one small script, served by depot, speaking only its public API.

No build step and no Node: the shell is one HTML template filled by `string.Template`, and the
pages are drawn in the browser by a plain ES module (static/console.js) that reads /catalog,
/api and /ingest with the user's key, exactly as any other client would. Every asset is package
data, so the console works with no network beyond depot itself.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from fastapi import FastAPI
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.staticfiles import StaticFiles

HERE = Path(__file__).parent
# Only depot's own files run, style and connect: a value that slipped into the page as markup
# could neither load nor send anything elsewhere (the script also builds every node as text).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")


def install_console(app: FastAPI, version: str) -> None:
    shell = Template((HERE / "templates" / "index.html").read_text(encoding="utf-8")).substitute(
        version=version, title="depot console")
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.get("/console", include_in_schema=False)
    def console() -> HTMLResponse:
        # The key is kept by the page (sessionStorage), never by the server: the shell is the same for all.
        return HTMLResponse(shell, headers={"cache-control": "no-cache", "content-security-policy": CSP,
                                            "x-content-type-options": "nosniff"})

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console", status_code=307)
