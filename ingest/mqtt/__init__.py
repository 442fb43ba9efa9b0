"""MQTT ingestion: QoS 1 on a persistent session, acknowledged only after the commit.

``config`` maps the ``RPM_MQTT_*`` settings onto :mod:`devices.mqtt.options`, ``topics`` names the
subscription and the device id a topic vouches for, ``session`` is the consumer's paho connection
(the callback converts each message into a ``delivery`` and enqueues it), ``inbox`` the bounded
hand-off, ``writer`` the single thread that batches, stores and then acknowledges, ``storage`` the
transaction and its failure handling, ``consumer`` the component that wires them. The QoS 1
publishing side (simulator, gateway, benchmark) is :mod:`devices.mqtt.publisher`.
"""
