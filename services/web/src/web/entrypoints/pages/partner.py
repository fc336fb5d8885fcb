"""Partner portal (agency staff): the referrals assigned to the person's agency.

Placeholder: the area's engineer builds it here (routes, templates under templates/partner/)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from refnet_platform.caller import Role
from web.entrypoints.pages.common import AppContext, area, render


def routes(ctx: AppContext) -> list[Route]:
    @area(ctx, Role.AGENCY)
    async def inbox(request: Request) -> Response:
        return render(ctx, request, "area.html", area="referrals")

    return [Route("/referrals", inbox)]
