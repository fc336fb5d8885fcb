"""Shelter page (shelter staff): beds, holds, arrivals, check-outs.

Placeholder: the area's engineer builds it here (routes, templates under templates/shelter/)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from refnet_platform.caller import Role
from web.entrypoints.pages.common import AppContext, area, render


def routes(ctx: AppContext) -> list[Route]:
    @area(ctx, Role.SHELTER)
    async def beds(request: Request) -> Response:
        return render(ctx, request, "area.html", area="shelter")

    return [Route("/shelter", beds)]
