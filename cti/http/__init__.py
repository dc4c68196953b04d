"""The HTTP API on klein: one module per resource group (``session``,
``agents``, ``interactions``, ``campaigns``, ``lists``, ``contacts``),
assembled in :mod:`cti.http.app`; shared ports and the role decorator in
:mod:`cti.http.context`; request and answer schemas in :mod:`cti.schemas`;
error-to-status mapping in :mod:`cti.errors`."""
