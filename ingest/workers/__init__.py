"""Several service processes from one command: ``rpm-ingest serve --workers N``.

``supervisor`` is the parent (binds the HTTP socket once, starts N workers, forwards SIGTERM/SIGINT,
restarts a crashed worker under the same replica name); ``worker`` is what a worker does
differently from a lone ``serve`` (the inherited socket, watching its parent); ``identity`` names
each worker's replica, and so its MQTT session. The design: docs/scaling.md.
"""
