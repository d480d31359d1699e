"""The four pages (the WebSockets themselves live in each app's ``websockets`` module)."""

from django.contrib.auth.decorators import login_required
from django.urls import include, path
from django.views.generic import TemplateView

urlpatterns = [
    path("", TemplateView.as_view(template_name="index.html"), name="index"),
    path("echo/", TemplateView.as_view(template_name="echo.html"), name="echo"),
    path("chat/", login_required(TemplateView.as_view(template_name="chat.html")), name="chat"),
    path("progress/", TemplateView.as_view(template_name="progress.html"), name="progress"),
    path("accounts/", include("django.contrib.auth.urls")),  # login at /accounts/login/
]
