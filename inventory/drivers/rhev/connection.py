"""An ``ovirtsdk4.Connection`` whose every request is bounded in time, and what curl's errors mean.

Hand-written because ovirtsdk4 4.6.3 offers no connect or idle-read timeout: ``Connection(timeout=)``
is only a total per request, and the SSO token request (the first request of every connection)
sets no timeout at all. Measured against a server that accepts connections and never answers:
300 s (libcurl's built-in connect timeout) over HTTPS, forever over HTTP. So every curl handle the
SDK makes gets, here:

* ``CONNECTTIMEOUT``: the TCP connection and the TLS handshake within the connect timeout;
* ``LOW_SPEED_LIMIT`` 1 byte/s for ``LOW_SPEED_TIME``: a request that receives nothing for the
  read timeout is aborted (an answer that keeps coming, however long, is not). curl averages the
  speed over the last 5 s, so a request that sent a body (the SSO POST, an action) gives up up to
  5 s later than one that did not;
* ``NOSIGNAL``: no SIGALRM for timeouts, which is what libcurl needs in a threaded program.

The API requests get them in an override of the SDK's private ``__send`` (it makes the handle and
adds it to the SDK's multi handle; the transfer only starts in ``wait``), the SSO requests in an
override of ``_get_sso_response``, a copy of the 4.6.3 body plus the bounds. Both are SDK internals:
``tests/drivers/test_timeouts.py`` runs against the real SDK and fails if they change.
"""

from __future__ import annotations

import io
import json
import math
import re
from typing import Any
from urllib.parse import urlencode

import ovirtsdk4
import pycurl

__all__ = ["BoundedConnection", "curl_code", "curl_text"]

# "Failed to read response: [(<pycurl.Curl object at 0x7f…>, 28, 'Operation timed out …')]": how the
# SDK reports a failed transfer of its multi handle (a str of the error list, not a pycurl.error).
_MULTI_ERROR = re.compile(r"\(\s*(?:<[^>]*>\s*,\s*)?(\d+)\s*,\s*(['\"])(.*?)\2\s*\)")


class BoundedConnection(ovirtsdk4.Connection):  # type: ignore[misc] # ovirtsdk4 ships no type information
    """An SDK connection whose requests give up after the connect and read timeouts (seconds)."""

    def __init__(self, *, connect_timeout: float, read_timeout: float, **kwargs: Any) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        super().__init__(**kwargs)

    def _bound(self, curl: Any) -> None:
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(self._connect_timeout * 1000)))
        curl.setopt(pycurl.LOW_SPEED_LIMIT, 1)
        curl.setopt(pycurl.LOW_SPEED_TIME, max(1, math.ceil(self._read_timeout)))

    def _Connection__send(self, request: Any) -> Any:
        context = super()._Connection__send(request)
        # context is (curl, body buffer, headers buffer, request); the handle is in the multi handle
        # but no transfer has started yet, so the options still apply.
        self._bound(context[0])
        return context

    def _get_sso_response(self, url: str, params: Any = "") -> Any:
        """ovirtsdk4 4.6.3's ``Connection._get_sso_response``, with the handle bounded."""
        # Set HTTP method and URL:
        curl = pycurl.Curl()
        curl.setopt(pycurl.CUSTOMREQUEST, "POST")
        curl.setopt(pycurl.URL, url)
        self._bound(curl)

        # Set proper Authorization header if using kerberos:
        if self._kerberos:
            curl.setopt(pycurl.HTTPAUTH, pycurl.HTTPAUTH_GSSNEGOTIATE)
            curl.setopt(pycurl.USERPWD, ":")

        # Configure debug mode:
        if self._debug and self._log is not None:
            curl.setopt(pycurl.VERBOSE, 1)
            curl.setopt(pycurl.DEBUGFUNCTION, self._curl_debug)

        # Configure TLS parameters:
        if self._url.startswith("https"):
            curl.setopt(pycurl.SSL_VERIFYPEER, 0 if self._insecure else 1)
            curl.setopt(pycurl.SSL_VERIFYHOST, 0 if self._insecure else 2)
            if self._ca_file is not None:
                curl.setopt(pycurl.CAINFO, self._ca_file)

        # Prepare headers:
        header_lines = [f"User-Agent: PythonSDK/{ovirtsdk4.get_version()}", "Accept: application/json"]
        curl.setopt(pycurl.HTTPHEADER, header_lines)
        curl.setopt(pycurl.COPYPOSTFIELDS, urlencode(params))

        # Prepare the buffer to receive the response:
        body_buf = io.BytesIO()
        headers_buf = io.BytesIO()

        # We ignore all headers which are received before the last response from the server,
        # because we can be forwarded by apache, and we are interested only in last response:
        def write_header(buf: bytes) -> None:
            if buf.startswith(b"HTTP/"):
                headers_buf.truncate(0)
                headers_buf.seek(0)
            headers_buf.write(buf)

        curl.setopt(pycurl.WRITEFUNCTION, body_buf.write)
        curl.setopt(pycurl.HEADERFUNCTION, write_header)

        # Send the request and wait for the response:
        try:
            curl.perform()
        finally:
            curl.close()  # 4.6.3 leaks the handle when perform raises

        # Get headers:
        headers_text = headers_buf.getvalue().decode("ascii")
        lines = headers_text.split("\n")

        # Check the returned content type:
        self._check_content_type(self._Connection__JSON_CONTENT_TYPE_RE, "JSON", lines)

        return json.loads(body_buf.getvalue().decode("utf-8"))


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def curl_code(err: BaseException) -> int | None:
    """The curl error code behind an SDK error: a wrapped ``pycurl.error``, or the code in the text
    of a failed transfer ("Failed to read response: [(<pycurl.Curl …>, 28, '…')]")."""
    for seen in _chain(err):
        if isinstance(seen, pycurl.error) and seen.args:
            code = seen.args[0]
            return code if isinstance(code, int) else None
    match = _MULTI_ERROR.search(str(err))
    return int(match.group(1)) if match else None


def curl_text(err: BaseException) -> str:
    """curl's own message for the failure, on one line, without the repr of a pycurl object."""
    for seen in _chain(err):
        if isinstance(seen, pycurl.error) and len(seen.args) > 1:
            return " ".join(str(seen.args[1]).split())
    match = _MULTI_ERROR.search(str(err))
    if match:
        return " ".join(match.group(3).split())
    return " ".join(str(err).split())
