"""The HTTP API's entry point for the service (``dirigent.service``).

The API itself lives in :mod:`cti.http` (klein, one module per resource
group); this module names what the composition root wires in.

========================================  ===========  =====================================
route                                     who          module
========================================  ===========  =====================================
``POST /api/login``, ``/api/logout``      anyone/user  ``cti.http.session``
``/api/agents...``, ``GET /api/queues``   users        ``cti.http.agents``
``/api/interactions...``                  sup./agent   ``cti.http.interactions``
``/api/campaigns...``                     camp. mgr.   ``cti.http.campaigns``
``/api/lists...``, ``/dnc``, ``/consent`` camp. mgr.   ``cti.http.lists``
``GET /api/contacts?phone=``              camp. mgr.   ``cti.http.contacts``
========================================  ===========  =====================================
"""

from __future__ import annotations

from cti.http.app import ApiResource
from cti.http.context import (
    MAX_BODY,
    MAX_UPLOAD,
    CampaignOps,
    ListOps,
    Operations,
    ReportLookup,
    UserLookup,
)

__all__ = [
    "MAX_BODY",
    "MAX_UPLOAD",
    "ApiResource",
    "CampaignOps",
    "ListOps",
    "Operations",
    "ReportLookup",
    "UserLookup",
]
