"""The owner's console: ``/console``, served by hotline itself (issue 21).

* :mod:`.auth` — the admin token exchanged for a signed session cookie; CSRF tokens.
* :mod:`.turns` — each call's turn latencies, kept for the call's page.
* :mod:`.views` — the pages, the server-sent events and the actions (say, hang up).

Templates (Jinja2, autoescaped) and static files (a little plain JavaScript, a stylesheet) are
package data: every asset is served by hotline, nothing from a CDN, no build step.

This package imports nothing at import time, so :mod:`hotline.server.hub` can import
:mod:`.turns` without pulling in the views (which import the hub).
"""
