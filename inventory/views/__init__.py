"""Views of the browser GUI, one module per part of the console.

Views are thin: they read through ``inventory.selectors`` and ``inventory.filters`` (the same as the
API) and change things only by calling ``inventory.services``. Regions of a page that change by
themselves carry ``data-refresh="<url>"``; ``static/vom/vom.js`` polls that URL, which is the page's
own URL with ``?fragment=<name>``, and swaps in the returned HTML (see :mod:`inventory.views.common`).
"""
