"""/docs (Swagger UI) and /redoc, served with no network: Kennel is for air-gapped networks too.

The scripts and styles come from the `fastapi-offline` package, which ships Swagger UI's and ReDoc's
builds as package data; they are served from /docs-assets (ReDoc's from /redoc/redoc.js, with the one
outside address in it, its footer's logo, pointed at our own icon). The pages carry no inline script (the
web app's Content-Security-Policy forbids it), so Swagger UI starts from a small script of our own.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"
# ReDoc styles itself with <style> elements and parses the schema in a worker; Swagger UI sets style
# attributes. Scripts still come only from this server.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

SWAGGER_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Kennel API - Swagger UI</title>
<link rel="icon" type="image/png" href="{ASSETS_URL}/favicon.png">
<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>
"""

# validatorUrl: null, or Swagger UI would send the schema to validator.swagger.io for its badge.
# persistAuthorization keeps the keys typed into "Authorize" across reloads (in this browser only).
SWAGGER_START = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  validatorUrl: null
});
"""

REDOC_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Kennel API - ReDoc</title>
<link rel="icon" type="image/png" href="{ASSETS_URL}/favicon.png">
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/redoc/redoc.js"></script>
</body>
</html>
"""


# ReDoc's one outside address: the logo of its "API docs by Redocly" footer.
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@lru_cache(maxsize=1)
def _redoc_js() -> bytes:
    return (ASSETS / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO, f"{ASSETS_URL}/favicon.png".encode())


def _page(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers={"Content-Security-Policy": CSP})


def install(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets (the app is made with docs_url=None and redoc_url=None)."""
    app.mount(ASSETS_URL, StaticFiles(directory=str(ASSETS)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> Response:
        return _page(SWAGGER_HTML)

    @app.get("/docs/start.js", include_in_schema=False)
    def swagger_start() -> Response:
        return Response(SWAGGER_START, media_type="text/javascript")

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> Response:
        return _page(REDOC_HTML)

    @app.get("/redoc/redoc.js", include_in_schema=False)
    def redoc_js() -> Response:
        return Response(_redoc_js(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=3600"})
