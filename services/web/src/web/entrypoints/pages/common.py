"""What every page of the web app uses: who is signed in and their token, rendering in the person's language,
the CSRF field, forms re-rendered with their values and the api's problems, areas by role, expired sessions.

An area module (operator.py, partner.py, shelter.py) exposes `routes(ctx: AppContext) -> list[Route]`:

    def routes(ctx: AppContext) -> list[Route]:
        @area(ctx, Role.AGENCY)
        async def inbox(request: Request) -> Response:
            try:
                reply = await ctx.apis.referral(token(request)).ListReferrals(pb.ListReferralsRequest())
            except grpc.RpcError as exc:
                return problem_page(ctx, request, problem_of(exc))
            return render(ctx, request, "partner/inbox.html", referrals=reply.referrals)
        return [Route("/referrals", inbox)]

A form (POST): `values = await form_values(request)`; if `session_expired(request)`: `return
keep_for_after_sign_in(request, values)` (what was typed comes back after sign-in: `draft(request)` on the
GET); on an api refusal: `return render_form(ctx, request, "x.html", values, problem_of(exc))` (the values
back in their fields, the problem next to the field it names, or on top).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from refnet_frontdoor.security import CSRF_FIELD, CSRF_SESSION_KEY
from refnet_frontdoor.signin import SignIn, remember_draft, take_draft
from refnet_platform.caller import Caller, Role
from web.adapters.apis import Apis, Problem
from web.config import Settings
from web.i18n import lang_of, translate

Handler = Callable[[Request], Awaitable[Response]]

# Where each role works (the home page sends them there).
HOME_OF: dict[Role, str] = {Role.OPERATOR: "/cases", Role.SUPERVISOR: "/cases", Role.AGENCY: "/referrals",
                            Role.SHELTER: "/shelter"}


@dataclass
class AppContext:
    """Handed to every area's `routes(ctx)`: the settings, the apis (as the person), the templates, the
    sign-in. `extra` is for an area's own long-lived parts (e.g. a stream hub), keyed by the area's name."""

    settings: Settings
    apis: Apis
    templates: Environment
    signin: SignIn
    extra: dict[str, Any] = field(default_factory=dict)


# Who, in what language, with which token.

def caller(request: Request) -> Caller:
    """The signed-in person, resolved by the sign-in gate before any handler runs."""
    person = getattr(request.state, "caller", None)
    if not isinstance(person, Caller):  # never serve a page nobody signed in for
        raise RuntimeError("the sign-in gate did not run before this handler")
    return person


def token(request: Request) -> str:
    """The person's access token for the apis (refreshed by the gate when near expiry). Raises when the
    session has ended (check `session_expired(request)` first on a POST)."""
    value = getattr(request.state, "access_token", None)
    if not value:
        raise RuntimeError("no access token: the session has ended (session_expired(request))")
    return str(value)


def session_expired(request: Request) -> bool:
    """A submitted form arrived after the person's session ended (refresh failed, or the shift's time is up):
    keep what they typed (`keep_for_after_sign_in`) and send them to sign in again."""
    return bool(getattr(request.state, "session_expired", False))


def lang(request: Request) -> str:
    return lang_of(request)


def t(request: Request, key: str, **params: Any) -> str:
    return translate(lang_of(request), key, **params)


def csrf_token(request: Request) -> str:
    return str(request.session.get(CSRF_SESSION_KEY, ""))


def csrf_field(request: Request) -> Markup:
    """The hidden field every POST form carries (`{{ csrf_field() }}` in templates)."""
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf_token(request))}">')


# Rendering.

def render(ctx: AppContext, request: Request, template: str, status_code: int = 200, **context: Any
           ) -> HTMLResponse:
    """A page in the person's language, with `me` (the Caller, or None), `lang`, `path`, `csrf`, `t()`,
    `csrf_field()` and the `vntime` filter available to the template."""
    me = getattr(request.state, "caller", None)
    html = ctx.templates.get_template(template).render(
        request=request, me=me if isinstance(me, Caller) else None, lang=lang_of(request), path=request.url.path,
        csrf=csrf_token(request) if "session" in request.scope else "",
        csrf_field=(lambda: csrf_field(request)) if "session" in request.scope else (lambda: Markup("")),
        **context)
    return HTMLResponse(html, status_code=status_code)


@dataclass(frozen=True)
class FormState:
    """A form's values and its problems: `errors` by field name (shown next to the field), `problem` the one
    not tied to a field (shown on top). Templates: `form.value("name")`, `form.error("name")`."""

    values: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, Problem] = field(default_factory=dict)
    problem: Problem | None = None
    session_expired: bool = False

    def value(self, name: str, default: str = "") -> str:
        return str(self.values.get(name, default))

    def error(self, name: str) -> Problem | None:
        return self.errors.get(name)

    @property
    def failed(self) -> bool:
        return bool(self.errors or self.problem or self.session_expired)


def form_state(values: Mapping[str, str], problem: Problem | None = None,
               errors: Mapping[str, Problem] | None = None, known_fields: frozenset[str] | None = None) -> FormState:
    """Puts an api's problem next to the field it names (when the form has it: `known_fields`, default the
    submitted values' names), else on top."""
    errors = dict(errors or {})
    top = problem
    names = known_fields if known_fields is not None else frozenset(values)
    if problem is not None and problem.field and _form_name(problem.field, names):
        errors[_form_name(problem.field, names) or problem.field] = problem
        top = None
    return FormState({k: v for k, v in values.items() if k != CSRF_FIELD}, errors, top)


def _form_name(api_field: str, names: frozenset[str]) -> str | None:
    """The form's field for an api's field name: exact, else its last part (`survivor.age` → `age`)."""
    if api_field in names:
        return api_field
    last = api_field.rsplit(".", 1)[-1]
    return last if last in names else None


def render_form(ctx: AppContext, request: Request, template: str, values: Mapping[str, str],
                problem: Problem | None = None, errors: Mapping[str, Problem] | None = None,
                known_fields: frozenset[str] | None = None, **context: Any) -> HTMLResponse:
    """Re-renders a form after a failed submit: nothing typed is lost; `form` (FormState) in the template;
    the status is the problem's (400 for a field's)."""
    form = form_state(values, problem, errors, known_fields)
    status = problem.status if problem else (400 if form.errors else 200)
    return render(ctx, request, template, status, form=form, problem=form.problem, **context)


def problem_page(ctx: AppContext, request: Request, problem: Problem) -> HTMLResponse:
    """A whole page for a problem not tied to a form (a GET that an api refused)."""
    return render(ctx, request, "problem.html", problem.status, problem=problem,
                  message=problem.message(lang_of(request)), status=problem.status, retry=problem.retry)


async def form_values(request: Request) -> dict[str, str]:
    """The submitted form's fields (urlencoded, as the pages' forms post; one value each: the last), CSRF
    token left out. Repeated fields (checkboxes): `form_lists`."""
    return {name: values[-1] for name, values in (await form_lists(request)).items() if values}


async def form_lists(request: Request) -> dict[str, list[str]]:
    """Every value of every field, in order (no multipart: the pages upload no files)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    fields: dict[str, list[str]] = {}
    for name, value in parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True,
                                 max_num_fields=500):
        if name != CSRF_FIELD:
            fields.setdefault(name, []).append(value)
    return fields


def keep_for_after_sign_in(request: Request, values: Mapping[str, str], path: str | None = None) -> Response:
    """The session ended before this form was sent: keep what was typed (server-side, for the same person
    only) and send them to sign in; they come back to `path` (default this page), whose GET takes it back
    with `draft(request)`."""
    target = path or request.url.path
    remember_draft(request.session, target, values)
    return RedirectResponse(f"/auth/login?next={quote(target, safe='')}", status_code=303)


def draft(request: Request, path: str | None = None) -> dict[str, str] | None:
    """What the person typed before their session ended, once (then it is gone)."""
    return take_draft(request.session, path or request.url.path)


# Areas by role.

def refused_page(ctx: AppContext, request: Request, message_key: str = "refused.area") -> HTMLResponse:
    person = caller(request)
    language = lang_of(request)
    return render(ctx, request, "not_for_role.html", 403, person=person,
                  message=translate(language, message_key, role=translate(language, f"role.{person.role}")),
                  home=HOME_OF.get(person.role))


def area(ctx: AppContext, *roles: Role) -> Callable[[Handler], Handler]:
    """A page only these roles use; anyone else gets the bilingual not-for-your-role page (403)."""
    allowed = frozenset(roles)

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            if caller(request).role not in allowed:
                return refused_page(ctx, request)
            return await handler(request)

        return guarded

    return decorate
