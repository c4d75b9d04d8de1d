"""What every route shares: the site's state, sessions, the view and act checks, rendering.

Checks, in order, for a page: may this browser view (a login, unless viewing is open; with
no login configured, only from a loopback client)? For an action (any POST): is the CSRF
token the session's, does the Origin (when sent) name this host, and is someone logged
in? A refused action changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from .auth import HOW_TO_SET, SESSION_COOKIE, SESSION_SECONDS, Policy, Session, is_loopback
from .metrics import Metrics
from .reads import Dashboard

HERE = Path(__file__).parent
FLASH_COOKIE = "celeriac_dashboard_flash"
FRAGMENT_HEADER = "x-celeriac-fragment"


class Site:
    """One mounted dashboard: the celeriac app's reads, who may do what, the templates."""

    def __init__(self, dash: Dashboard, policy: Policy, title: str = "celeriac") -> None:
        self.dash = dash
        self.policy = policy
        self.title = title
        self.metrics = Metrics(dash)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["badge"] = state_badge

    # --- sessions --------------------------------------------------------------------

    def session(self, request: Request) -> Session:
        cached = getattr(request.state, "session", None)
        if isinstance(cached, Session):
            return cached
        session = self.policy.signer.loads(request.cookies.get(SESSION_COOKIE)) or Session(is_new=True)
        request.state.session = session
        return session

    def save_session(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(SESSION_COOKIE, self.policy.signer.dumps(session), max_age=SESSION_SECONDS,
                            path=base(request) or "/", httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")

    def flash(self, request: Request, response: Response, text: str, kind: str = "ok") -> None:
        response.set_cookie(FLASH_COOKIE, self.policy.signer.sign_text(json.dumps([kind, text])), max_age=60,
                            path=base(request) or "/", httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")

    def _take_flash(self, request: Request) -> tuple[str, str] | None:
        raw = self.policy.signer.unsign_text(request.cookies.get(FLASH_COOKIE))
        if raw is None:
            return None
        try:
            kind, text = json.loads(raw)
        except (ValueError, TypeError):
            return None
        return str(kind), str(text)

    # --- checks ----------------------------------------------------------------------

    def viewer_refusal(self, request: Request) -> Response | None:
        """None if this request may see the pages, else the response saying why not."""
        session = self.session(request)
        if self.policy.login is None:
            client = request.client.host if request.client else ""
            if client and not is_loopback(client):
                return self.error(request, 403, "This dashboard has no login configured, so it answers only on "
                                  f"this machine (127.0.0.1). To open it to others, {HOW_TO_SET}.")
            return None
        if self.policy.may_view(session):
            return None
        target = request.url.path[len(base(request)):] or "/"
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(f"{base(request)}/login?next={quote(target)}", status_code=303)

    async def action_refusal(self, request: Request) -> Response | None:
        """None if this POST may act, else the refusal (403). Reads the form."""
        session = self.session(request)
        form = await request.form()
        token = form.get("csrf_token")
        if not self.same_origin(request) or not self.policy.check_csrf(
                session, token if isinstance(token, str) else None):
            return self.error(request, 403, "This form's security token is missing or out of date (CSRF): "
                              "nothing was done. Reload the page and try again.")
        if not self.policy.may_act(session):
            if not self.policy.can_act:
                return self.error(request, 403, f"Actions need a login, and none is configured: {HOW_TO_SET}.")
            return self.error(request, 403, "Log in to do this.", login_link=True)
        return None

    def same_origin(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if not origin or origin == "null":
            return origin != "null"
        return urlsplit(origin).netloc == request.headers.get("host", "")

    # --- rendering -------------------------------------------------------------------

    def render(self, request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
        session = self.session(request)
        flash = self._take_flash(request)
        ctx = {"request": request, "base": base(request), "site": self, "session": session,
               "user": session.user, "can_act": self.policy.may_act(session),
               "login_configured": self.policy.can_act, "flash": flash,
               "broker": self.dash.broker_shown(), "title": self.title, **context}
        if request.headers.get(FRAGMENT_HEADER) and not flash:
            tmpl = self.templates.get_template(template)
            content = "".join(tmpl.blocks["main"](tmpl.new_context(ctx)))
            return HTMLResponse(content, status_code=status)
        response = self.templates.TemplateResponse(request, template, ctx, status_code=status)
        if session.is_new:
            session.is_new = False
            self.save_session(request, response, session)
        if flash is not None:
            response.delete_cookie(FLASH_COOKIE, path=base(request) or "/")
        return response

    def error(self, request: Request, status: int, message: str, *, login_link: bool = False,
              refresh: bool = False) -> Response:
        return self.render(request, "error.html", {"message": message, "status": status, "login_link": login_link,
                                                   "refresh": refresh}, status=status)

    def redirect(self, request: Request, path: str, note: str | None = None, kind: str = "ok") -> Response:
        response = RedirectResponse(base(request) + path, status_code=303)
        if note:
            self.flash(request, response, note, kind)
        return response


def base(request: Request) -> str:
    """The path the dashboard is mounted under ('' at the root)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def safe_next(target: str | None) -> str:
    """A path inside the dashboard to go to after logging in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def state_badge(state: str | None) -> Markup:
    kind = {"SUCCESS": "ok", "FAILURE": "bad", "REJECTED": "bad", "REVOKED": "warn", "RETRY": "warn",
            "STARTED": "run", "online": "ok", "lost": "bad", "offline": "muted",
            "DEAD-LETTERED": "bad"}.get(state or "", "muted")
    return Markup('<span class="badge {}">{}</span>').format(kind, state or "?")
