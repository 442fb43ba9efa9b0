"""The virtual radio: bumble controllers joined by an in-process link.

Every emulated device (the home gateway's adapter as well as each peripheral) gets its own
emulated controller and host stack; the controllers exchange link-layer packets through one
``LocalLink``. Must be created and used inside a running asyncio event loop.
"""

from __future__ import annotations

import asyncio
import logging

from bumble import hci
from bumble.controller import Controller
from bumble.device import Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

logger = logging.getLogger(__name__)


class _Controller(Controller):
    """bumble's emulated controller, with LE Create Connection Cancel as the Core specification
    has it (Vol 4, Part E, 7.8.13): the pending attempt ends with an LE Connection Complete event,
    status Unknown Connection Identifier. (The stock emulation leaves the attempt pending, so a
    timed-out connect to a silent device would block the adapter for good.)"""

    def on_hci_le_create_connection_cancel_command(
        self, _command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        failure = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        # after the Command Complete this method's return value turns into
        asyncio.get_running_loop().call_soon(self.send_hci_packet, failure)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


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
        controller = _Controller(name, link=self._link, public_address=key)
        self._controllers[key] = controller
        device = Device(name=name, address=Address(key), host=Host(controller, AsyncPipeSink(controller)))
        logger.debug("virtual radio: %s joined as %s", name, key)
        return device

    def remove_device(self, address: str) -> None:
        """Take a device's controller off the air (it can no longer be seen or reached)."""
        controller = self._controllers.pop(address.upper(), None)
        if controller is not None and controller in self._link.controllers:
            self._link.remove_controller(controller)
