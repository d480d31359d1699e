"""The four pages, the admin, the WebSocket API's explorer and the live dashboard.

The WebSockets themselves live in the apps' ``websockets`` modules.
"""

from chat.websockets import MAX_LENGTH
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView, TemplateView

# The chat's input allows what the server accepts (chat.websockets.MAX_LENGTH), no more.
CHAT_PAGE = TemplateView.as_view(template_name="chat.html", extra_context={"max_length": MAX_LENGTH})

urlpatterns = [
    # Browsers ask for /favicon.ico on pages that name no icon (a JSON document): not a 404 each time.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("", TemplateView.as_view(template_name="index.html"), name="index"),
    path("echo/", TemplateView.as_view(template_name="echo.html"), name="echo"),
    path("chat/", login_required(CHAT_PAGE), name="chat"),
    path("progress/", TemplateView.as_view(template_name="progress.html"), name="progress"),
    path("accounts/", include("django.contrib.auth.urls")),  # login at /accounts/login/
    path("admin/", admin.site.urls),  # staff: the dashboard in the admin's layout, /admin/websockets/
    # The AsyncAPI document and the event explorer (in DEBUG, or for staff with TORNADO["explorer"]),
    # metrics.json and Prometheus metrics (in DEBUG or for staff), the live dashboard (staff only).
    path("ws-api/", include("tornado_websockets.urls")),
]
