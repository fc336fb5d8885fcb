"""/ sends each person to their area; /lang switches the language (a cookie) and comes back."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from refnet_frontdoor.signin import safe_next
from web.entrypoints.pages.common import HOME_OF, AppContext, caller, refused_page
from web.i18n import LANG_COOKIE, language


def routes(ctx: AppContext) -> list[Route]:
    async def home(request: Request) -> Response:
        where = HOME_OF.get(caller(request).role)
        if where is None:
            return refused_page(ctx, request, "refused.app")
        return RedirectResponse(where, status_code=303)

    async def switch_language(request: Request) -> Response:
        response = RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
        response.set_cookie(LANG_COOKIE, language(request.query_params.get("to")), max_age=365 * 24 * 3600,
                            httponly=True, samesite="lax", secure=ctx.signin.secure_cookie)
        return response

    return [Route("/", home), Route("/lang", switch_language)]
