"""One way to reach an MQTT broker, for the gateway, the service and the simulators.

:mod:`~devices.mqtt.address` parses the broker URL, :mod:`~devices.mqtt.options` checks the rest of
the settings (credentials, TLS files, protocol version, client id), :mod:`~devices.mqtt.client`
builds the paho client from them and :mod:`~devices.mqtt.publisher` is the QoS 1 publisher. Only
``client`` imports paho; importing this package imports nothing.
"""
