"""The HTTP protocols the service serves with: uvicorn's, with read timeouts for slow
clients (:mod:`.slow_clients`) and one send per response (:mod:`.coalesced_writes`).

serve passes ``http="service.api.protocols:ServiceHttpToolsProtocol"`` to uvicorn
(an import path, so that ``--workers N`` processes import it too).
"""

from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .coalesced_writes import CoalescedWrites
from .slow_clients import ReadTimeouts

__all__ = ["ServiceH11Protocol", "ServiceHttpToolsProtocol"]


class ServiceHttpToolsProtocol(ReadTimeouts, CoalescedWrites, HttpToolsProtocol):
    """uvicorn's httptools protocol (what serve uses), with read timeouts and coalesced writes."""


class ServiceH11Protocol(ReadTimeouts, CoalescedWrites, H11Protocol):
    """uvicorn's h11 protocol, with read timeouts and coalesced writes."""
