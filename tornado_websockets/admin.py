"""The live WebSocket dashboard as a page of the Django admin: ``/admin/websockets/``, staff only.

Django's admin imports this module at start-up (``admin.autodiscover``), as it does every
installed app's ``admin`` module; `install` then adds the page to ``admin.site``, and a
"WebSockets" box to the admin's index that links to it. The page is the dashboard of
`tornado_websockets.dashboard` inside the admin's own layout; the admin's ``admin_view`` sends
anyone who is not active staff to its login page. ``TORNADO["metrics"] = False`` turns it off.

A project with its own `~django.contrib.admin.AdminSite` calls ``install(my_site)``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import URLPattern, URLResolver, path, reverse

from tornado_websockets import dashboard

__all__ = ["URL_NAME", "install"]

#: The page's URL name, in the site's namespace: ``reverse("admin:tornado_websockets_dashboard")``.
URL_NAME = "tornado_websockets_dashboard"


def install(site: admin.AdminSite) -> None:
    """Add the dashboard page and its index entry to ``site``; a second call does nothing."""
    if getattr(site, "_tornado_websockets_installed", False):
        return
    site._tornado_websockets_installed = True  # type: ignore[attr-defined]
    site_urls, site_app_list = site.get_urls, site.get_app_list

    def get_urls() -> list[URLResolver | URLPattern]:
        # First: the admin's last pattern catches every URL it does not know.
        page = path("websockets/", site.admin_view(dashboard.admin_dashboard), name=URL_NAME)
        return [page, *site_urls()]

    def get_app_list(request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        apps = site_app_list(request, app_label)
        if app_label is None and getattr(request.user, "is_staff", False):
            url = reverse(f"{site.name}:{URL_NAME}")
            entry: dict[str, Any] = {"name": "Live dashboard", "object_name": "Dashboard", "admin_url": url}
            entry["view_only"] = True  # the index shows "View", no "Add"
            apps.append(
                {
                    "name": "WebSockets",
                    "app_label": "tornado_websockets",
                    "app_url": url,
                    "has_module_perms": True,
                    "models": [entry],
                }
            )
        return apps

    site.get_urls = get_urls  # type: ignore[method-assign]
    site.get_app_list = get_app_list  # type: ignore[method-assign]


install(admin.site)
