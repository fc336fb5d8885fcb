"""What every people-facing Starlette app of refnet needs (the ops console, the web front door).

- `refnet_frontdoor.security`: security headers (CSP without inline script, frame-ancestors 'none') and the
  CSRF check (`SecurityHeaders`, `CsrfProtect`, `CSRF_SESSION_KEY`, `CSRF_FIELD`).
- `refnet_frontdoor.signin`: the OIDC sign-in (`SignInConfig`, `SignInPages`, `SignIn`, `SignInGate`): who a
  request is from, in `request.state.caller`.
- `refnet_frontdoor.sessions`: server-side sessions (`ServerSessions`, `SessionStore`), for an app that keeps
  the person's tokens.
"""
