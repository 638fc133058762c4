"""The web console (``/ui``) and the API docs (``/docs``), served from the package.

Nothing here is part of the REST contract (``include_in_schema=False``), and no
page loads anything from another host: Swagger UI's files are vendored under
``service/ui/static/vendor/swagger-ui``.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from ...ui import STATIC_DIR

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
router.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")

_SWAGGER = "/ui/static/vendor/swagger-ui"


@router.get("/ui")
def console() -> FileResponse:
    """The console's single page; its modules and styles come from /ui/static."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/ui/")
def console_slash() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=308)


@router.get("/docs")
def docs() -> HTMLResponse:
    """Swagger UI over /openapi.json, with its script and styles from the package."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="gmm-service — API docs",
        swagger_js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{_SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{_SWAGGER}/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},
    )
