"""MQTT ingestion: QoS 1 on a persistent session, acknowledged only after the commit.

``session`` is the consumer's paho connection (the callback converts and enqueues), ``inbox`` the
bounded hand-off, ``writer`` the single thread that batches, stores and then acknowledges,
``storage`` the transaction and its failure handling, ``consumer`` the component that wires them.
``publisher`` is the QoS 1 publishing side used by the simulator and the benchmark.
"""
