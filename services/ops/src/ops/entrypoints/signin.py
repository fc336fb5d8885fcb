"""Who is using the console: people sign in through refnet's identity provider; the CLI sends their token.

The sign-in itself is refnet_frontdoor.signin's (the authorization code flow with PKCE, RP-initiated sign-out,
the gate); what is the console's own:
- In a browser, as the confidential client `OPS_CONSOLE_OIDC_CLIENT_ID`. The console keeps NO tokens: the
  access token is verified and read for the person's user name, role and provinces, then dropped. The session
  cookie (signed, HttpOnly, SameSite=Lax; Secure behind https) keeps only those, a CSRF token, when the sign-in
  happened and the ID token (for signing out of the provider). It ends `OPS_CONSOLE_SESSION_MAX_S` after sign-in.
- From the CLI or a script: `Authorization: Bearer <access token>`, verified the same way on every request.
  The cookie is then ignored, so such requests need no CSRF token. `/auth/cli` tells `refnet login` where to
  sign in (the device authorization flow of the CLI's own client).
- Only the operations team (role ops) and supervisors may use the console; anyone else who signs in gets a
  403 page saying so, in Vietnamese and English, with a way to sign out.
- /healthz, /readyz and /metrics (probes, the Prometheus scrape) and the sign-in routes stay open.
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ops.config import Settings
from refnet_frontdoor.signin import SignIn as FrontDoorSignIn
from refnet_frontdoor.signin import SignInConfig, SignInGate, SignInNotConfigured, SignInPages, safe_next
from refnet_platform.caller import Role
from refnet_platform.identity import TokenVerifier

CONSOLE_ROLES = frozenset({Role.OPS, Role.SUPERVISOR})
SESSION_COOKIE = "refnet_ops_session"
# Open to anyone besides the sign-in routes: the probes and the Prometheus scrape, the CLI's sign-in settings.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/auth/cli"})

__all__ = ["CONSOLE_ROLES", "OPEN_PATHS", "SESSION_COOKIE", "SignIn", "SignInGate", "SignInNotConfigured",
           "refused_message", "safe_next"]


def refused_message(role: str) -> tuple[str, str]:
    """(Vietnamese, English): what a signed-in person whose role may not use the console is told."""
    return (f"Vai trò của bạn ({role}) không được dùng bảng điều khiển vận hành: bảng này chỉ dành cho "
            "đội vận hành (ops) và giám sát viên (supervisor).",
            f"Your role ({role}) cannot use the operations console: it is for the operations team (ops) and "
            "supervisors only.")


class SignIn(FrontDoorSignIn):
    """The console's sign-in: its client, its roles, its pages, bearer tokens for the CLI under /api/."""

    def __init__(self, settings: Settings, verifier: TokenVerifier | None = None) -> None:
        if not settings.oidc_issuer or not settings.console_oidc_client_secret:
            raise SignInNotConfigured(
                "people sign in to the operations console through refnet's identity provider: set OIDC_ISSUER "
                f"(e.g. http://127.0.0.1:8180/realms/refnet) and OPS_CONSOLE_OIDC_CLIENT_SECRET (the secret of the "
                f"{settings.console_oidc_client_id!r} client); the console does not run without them")
        env = Environment(loader=PackageLoader("ops", "web/templates"), autoescape=select_autoescape())
        super().__init__(SignInConfig(
            issuer=settings.oidc_issuer, client_id=settings.console_oidc_client_id,
            client_secret=settings.console_oidc_client_secret, allowed_roles=CONSOLE_ROLES,
            refused_message=refused_message, pages=SignInPages(env), audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url, leeway_s=settings.oidc_leeway_s,
            max_age_s=settings.console_session_max_s, public_url=settings.console_public_url, keep_tokens=False,
            accept_bearer=True, api_prefix="/api/", open_paths=OPEN_PATHS,
            not_signed_in="not signed in: sign in to the console (`refnet login` for the CLI, or REFNET_TOKEN)"),
            verifier)
        self.audience = settings.oidc_audience
        self.cli_client_id = settings.console_cli_client_id

    async def cli_settings(self, request: Request) -> Response:
        """Where `refnet login` signs in (the device authorization flow of the CLI's own client)."""
        return JSONResponse({"issuer": self.issuer, "client_id": self.cli_client_id, "audience": self.audience})
