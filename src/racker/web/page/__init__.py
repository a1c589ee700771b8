"""The rack page at ``/`` of ``racker serve``: every node's state, live, read-only.

``view`` is what the page shows (pure), ``reading`` the store's reads (in a thread),
``feed`` keeps the view current and streams it (``racker.web.stream``), ``routes`` the HTTP
routes. The page itself is static HTML, CSS and JavaScript in ``racker/web/static``: nothing is
fetched from elsewhere, so it works on a rack network without Internet access.
"""
