"""/docs (Swagger UI) and /redoc with their scripts and styles served by depot itself, not by a CDN.

FastAPI's own pages load them from a public CDN, so on a machine without the internet they are
blank. The assets come from the `fastapi-offline` package (its static folder only; depot keeps
its own app factory), and the pages name no external host (no CDN, no Google Fonts).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import FileResponse, HTMLResponse

ASSETS = {
    "/docs/swagger-ui-bundle.js": "swagger-ui-bundle.js",
    "/docs/swagger-ui.css": "swagger-ui.css",
    "/docs/redoc.standalone.js": "redoc.standalone.js",
    "/docs/favicon.png": "favicon.png",
}
DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", *ASSETS})


def _static_folder():
    return files("fastapi_offline") / "static"


def install_offline_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """Add the pages and their assets; the app must be made with docs_url=None and redoc_url=None."""
    folder = _static_folder()

    def asset_route(path: str, name: str) -> None:
        source = str(folder / name)

        async def asset() -> FileResponse:
            # The assets change only with the package: let browsers keep them for a day.
            return FileResponse(source, headers={"cache-control": "public, max-age=86400"})

        app.add_api_route(path, asset, methods=["GET"], include_in_schema=False, name=f"docs-asset-{name}")

    for path, name in ASSETS.items():
        asset_route(path, name)

    def root(request: Request) -> str:
        return request.scope.get("root_path", "")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=f"{base}{openapi_url}", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{base}/docs/oauth2-redirect",
            swagger_js_url=f"{base}/docs/swagger-ui-bundle.js", swagger_css_url=f"{base}/docs/swagger-ui.css",
            swagger_favicon_url=f"{base}/docs/favicon.png", swagger_ui_parameters=app.swagger_ui_parameters)

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(openapi_url=f"{base}{openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{base}/docs/redoc.standalone.js",
                              redoc_favicon_url=f"{base}/docs/favicon.png", with_google_fonts=False)
