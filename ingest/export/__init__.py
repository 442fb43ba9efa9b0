"""The FHIR export inside the service: the outbox (rows written with the readings, claimed by
workers), its upkeep, the Device registry, the exports API and the workers.

The mapping and delivery live in ``fhir_export``.
"""
