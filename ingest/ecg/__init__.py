"""ECG strips inside the service: storage (``store.py``), the list and fetch API, the pipeline
step that stores strips and writes their outbox rows, and the component that wires them.

The strip model and its validation are pure and live in ``devices.ecg``.
"""
