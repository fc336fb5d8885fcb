"""Operator workspace (operators, supervisors): calls, cases, referrals live, escalations.

Placeholder: the area's engineer builds it here (routes, templates under templates/operator/)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from refnet_platform.caller import Role
from web.entrypoints.pages.common import AppContext, area, render


def routes(ctx: AppContext) -> list[Route]:
    @area(ctx, Role.OPERATOR, Role.SUPERVISOR)
    async def workspace(request: Request) -> Response:
        return render(ctx, request, "area.html", area="cases")

    return [Route("/cases", workspace)]
