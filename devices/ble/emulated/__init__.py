"""Emulated Bluetooth health devices on a virtual radio, and a bleak backend that talks to them.

Nothing here touches a real radio. Google's bumble supplies emulated controllers joined by a
virtual link (``bumble.link.LocalLink``); :mod:`.bleak_backend` plugs bumble into bleak as a custom
backend, so the production collector drives the emulated peripherals through the real
``BleakClient``/``BleakScanner`` facade. The peripherals (:mod:`.live_devices`,
:mod:`.record_devices`) speak the Bluetooth SIG health profiles byte for byte and can be told to
misbehave (drop the link, send garbage, abort).
"""
