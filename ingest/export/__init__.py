"""The FHIR export inside the service: outbox upkeep, Device registry, API queries, workers.

The mapping and delivery live in ``fhir_export``; the outbox itself in :mod:`ingest.outbox`.
"""
