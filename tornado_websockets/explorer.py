"""The Django views of the AsyncAPI document and of the live event explorer (``tornado_websockets.urls``).

Who may see them: with ``TORNADO["explorer"]`` unset (None), everyone in ``DEBUG`` and nobody
otherwise; with True, everyone in ``DEBUG`` and staff users otherwise; with False, nobody. A
refused request gets 404, as if the URL did not exist: a production site does not advertise that
it has an API explorer, and a redirect to a login page would.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse

from tornado_websockets import asyncapi, binaryframes
from tornado_websockets.conf import tornado_settings

__all__ = ["asyncapi_json", "explorer", "explorer_allowed"]

#: The ``info`` of the served document.
TITLE = "WebSocket API"
VERSION = "1.0.0"


def explorer_allowed(request: HttpRequest) -> bool:
    """Whether ``request`` may read the AsyncAPI document and open the explorer."""
    setting = tornado_settings().explorer
    if setting is False:
        return False
    if settings.DEBUG:
        return True
    user = getattr(request, "user", None)  # None without the authentication middleware: refused
    return setting is True and user is not None and bool(user.is_active and user.is_staff)


def _refuse_unless_allowed(request: HttpRequest) -> None:
    if not explorer_allowed(request):
        raise Http404("No explorer here.")


def asyncapi_json(request: HttpRequest) -> JsonResponse:
    """The AsyncAPI 3.0 document of every registered WebSocket."""
    _refuse_unless_allowed(request)
    document = asyncapi.document(title=TITLE, version=VERSION)
    return JsonResponse(document, json_dumps_params={"indent": 2, "allow_nan": False})  # RFC 8259


def explorer(request: HttpRequest) -> HttpResponse:
    """The live event explorer page; its script reads the document from `asyncapi_json`."""
    _refuse_unless_allowed(request)
    config = {
        "schema": reverse("tornado_websockets:asyncapi"),
        "client": static("tornado_websockets/client.mjs"),
        # Bytes fields send a file as bytes when the server speaks MessagePack (docs/protocol.rst).
        "binary": binaryframes.available(),
    }
    # The site's root, below the prefix a proxy may mount the site under.
    home = request.META.get("SCRIPT_NAME", "").rstrip("/") + "/"
    return render(request, "tornado_websockets/explorer.html", {"config": config, "home": home})
