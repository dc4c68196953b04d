"""Install Twisted's asyncio reactor before anything imports the global one.

panoramisk is asyncio; Twisted web and everything else share its loop
(DESIGN.md principle 1).  Call :func:`install` first thing in a process.
"""

from __future__ import annotations

import asyncio
import sys


def install() -> asyncio.AbstractEventLoop:
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        if type(reactor).__name__ != "AsyncioSelectorReactor":
            raise RuntimeError(
                f"a {type(reactor).__name__} was installed before the asyncio reactor"
            )
        return reactor._asyncioEventloop  # type: ignore[attr-defined]  # the asyncio reactor's own loop; the module is typed as the common reactor interfaces
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    return loop
