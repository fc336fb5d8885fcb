"""Composition root: the web app's parts from its settings (tests pass their own sign-in, store and apis)."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, pass_context, select_autoescape
from jinja2.runtime import Context

from refnet_frontdoor.signin import SignIn, SignInConfig, SignInPages
from refnet_platform.caller import Role
from refnet_platform.identity import TokenVerifier
from web.adapters.apis import Apis
from web.config import Settings
from web.entrypoints.pages.common import AppContext
from web.i18n import lang_of, language, translate, vntime

# Who may use the web app; anyone else (the operations team) is told it is not for their role.
WEB_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.AGENCY, Role.SHELTER})
SESSION_COOKIE = "refnet_web_session"


def templates() -> Environment:
    env = Environment(loader=PackageLoader("web", "templates"), autoescape=select_autoescape())

    @pass_context
    def t(context: Context, key: str, **params: object) -> str:
        lang = context.get("lang") or lang_of(context.get("request"))
        return translate(language(str(lang)), key, **params)

    env.globals["t"] = t
    env.filters["vntime"] = vntime
    return env


def refused_message(role: str) -> tuple[str, str]:
    return (translate("vi", "refused.app", role=translate("vi", f"role.{role}")),
            translate("en", "refused.app", role=translate("en", f"role.{role}")))


def sign_in(settings: Settings, env: Environment, verifier: TokenVerifier | None = None) -> SignIn:
    """Raises SignInNotConfigured without OIDC_ISSUER and WEB_OIDC_CLIENT_SECRET."""
    return SignIn(SignInConfig(
        issuer=settings.oidc_issuer or "", client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret or "", allowed_roles=WEB_ROLES, refused_message=refused_message,
        pages=SignInPages(env, problem="problem.html", refused="not_for_role.html", signed_out="signed_out.html"),
        audience=settings.oidc_audience, jwks_url=settings.oidc_jwks_url, leeway_s=settings.oidc_leeway_s,
        max_age_s=settings.session_max_s, public_url=settings.public_url, keep_tokens=True,
        open_paths=frozenset({"/healthz", "/readyz", "/metrics", "/lang"}),
        not_signed_in="Chưa đăng nhập / Not signed in"), verifier)


def bootstrap(settings: Settings, signin: SignIn | None = None, apis: Apis | None = None) -> AppContext:
    env = templates()
    return AppContext(settings=settings, apis=apis or Apis.from_settings(settings), templates=env,
                      signin=signin or sign_in(settings, env))
