"""Views for the Django tests: a fast one, a slow one, and a login."""

from __future__ import annotations

import time

from django.contrib.auth import authenticate, login
from django.http import HttpRequest, HttpResponse
from django.urls import path


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello from django")


def slow(request: HttpRequest) -> HttpResponse:
    time.sleep(2)
    return HttpResponse("slow")


def do_login(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username=request.GET["u"], password=request.GET["p"])
    if user is None:
        return HttpResponse("no", status=403)
    login(request, user)
    return HttpResponse("ok")


urlpatterns = [path("hello/", hello), path("slow/", slow), path("login/", do_login)]
