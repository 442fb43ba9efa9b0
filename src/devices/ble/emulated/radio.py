"""The virtual radio: bumble controllers joined by an in-process link.

Every emulated device (the home gateway's adapter as well as each peripheral) gets its own
emulated controller and host stack; the controllers exchange link-layer packets through one
``LocalLink``. Must be created and used inside a running asyncio event loop.
"""

from __future__ import annotations

import logging

from bumble.controller import Controller
from bumble.device import Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

logger = logging.getLogger(__name__)


class VirtualRadio:
    """A shared virtual 2.4 GHz band. Devices created here can see and connect to each other."""

    def __init__(self) -> None:
        self._link = LocalLink()  # type: ignore[no-untyped-call]
        self._controllers: dict[str, Controller] = {}

    def create_device(self, name: str, address: str) -> Device:
        """A powered-off bumble device with its own emulated controller on this radio.

        ``address`` is used as the device's (static random) address, e.g. ``"F0:F1:F2:F3:F4:F5"``.
        """
        key = address.upper()
        if key in self._controllers:
            raise ValueError(f"address {address} is already on the air")
        controller = Controller(name, link=self._link, public_address=key)
        self._controllers[key] = controller
        device = Device(name=name, address=Address(key), host=Host(controller, AsyncPipeSink(controller)))
        logger.debug("virtual radio: %s joined as %s", name, key)
        return device

    def remove_device(self, address: str) -> None:
        """Take a device's controller off the air (it can no longer be seen or reached)."""
        controller = self._controllers.pop(address.upper(), None)
        if controller is not None and controller in self._link.controllers:
            self._link.remove_controller(controller)
