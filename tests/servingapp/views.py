"""Views that stream, fail half-way, log in and out, and change a password."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from django.contrib.auth import authenticate, login, logout, update_session_auth_hash
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

#: Set by /release/: the second chunk of /stream/ waits for it.
RELEASE = threading.Event()
CHUNK = b"x" * 65536


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        yield b"first\n"
        RELEASE.wait(20)
        yield b"second\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def release(request: HttpRequest) -> HttpResponse:
    RELEASE.set()
    return HttpResponse("released")


def broken_stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("the generator failed half-way")

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def broken_first(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        raise RuntimeError("the generator failed before its first chunk")
        yield b"never"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def big(request: HttpRequest) -> StreamingHttpResponse:
    megabytes = int(request.GET["mb"])
    return StreamingHttpResponse(
        (CHUNK for _ in range(megabytes * 16)), content_type="application/octet-stream"
    )


def do_login(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username=request.GET["u"], password=request.GET["p"])
    if user is None:
        return HttpResponse("no", status=403)
    login(request, user)
    if "expiry" in request.GET:
        request.session.set_expiry(int(request.GET["expiry"]))
    return HttpResponse("ok")


@csrf_exempt
def flush(request: HttpRequest) -> HttpResponse:
    """The session ends without a logout (no ``user_logged_out``)."""
    request.session.flush()
    return HttpResponse("flushed")


@csrf_exempt
def do_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("bye")


@csrf_exempt
def change_password(request: HttpRequest) -> HttpResponse:
    """As Django's PasswordChangeView: the new password, and this session kept valid."""
    user = request.user
    user.set_password(request.GET["new"])  # type: ignore[union-attr]
    user.save()  # type: ignore[union-attr]
    if "keep" in request.GET:
        update_session_auth_hash(request, user)  # type: ignore[arg-type]
    return HttpResponse("changed")


def where(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"{request.META['REMOTE_ADDR']} {request.scheme}")


urlpatterns = [
    path("where/", where),
    path("stream/", stream),
    path("release/", release),
    path("broken-stream/", broken_stream),
    path("broken-first/", broken_first),
    path("big/", big),
    path("login/", do_login),
    path("logout/", do_logout),
    path("password/", change_password),
    path("flush/", flush),
    path("ws-api/", include("tornado_websockets.urls")),
]
