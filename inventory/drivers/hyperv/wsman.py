"""pypsrp's WSMan with every request bounded by the read timeout (imported only when WinRM is used).

Hand-written because pypsrp 0.9.1 retries a Receive that hit the read timeout five times, sleeping
2, 6, 14, 30 and 62 s in between (measured: 474 s with this driver's former timeouts against a
WinRM service that stalls), and offers no setting for it. Here one read timeout fails the call.
Receive is still safe to use without retries: WinRM answers a Receive within the operation
timeout (with "no output yet", which pypsrp asks again), and the read timeout is kept longer.
"""

from __future__ import annotations

import typing
import xml.etree.ElementTree as ET

from pypsrp.wsman import NAMESPACES, WSMan, WSManAction

if typing.TYPE_CHECKING:
    from pypsrp.wsman import OptionSet, SelectorSet

__all__ = ["BoundedWSMan"]


class BoundedWSMan(WSMan):
    """A WSMan whose Receive is sent once: a read timeout fails it instead of being retried."""

    def receive(
        self,
        resource_uri: str,
        resource: ET.Element,
        option_set: OptionSet | None = None,
        selector_set: SelectorSet | None = None,
        timeout: int | None = None,
    ) -> ET.Element:
        res = self.invoke(WSManAction.RECEIVE, resource_uri, resource, option_set, selector_set, timeout)
        body = res.find("s:Body", namespaces=NAMESPACES)
        if body is None:  # pragma: no cover - a WSMan response always has a body
            raise ValueError("the WSMan Receive response has no body")
        return body
