"""SMART on FHIR app launch: clinicians open the dashboard from inside the EHR.

Pure parts (the issuer allow-list, the launch's secrets and authorization parameters, the
discovery documents' checks, the id token's validation, the refusal pages) are kept apart from
the I/O (``discovery`` fetches, ``flow`` runs the launch against the EHR and the database).
``routes`` serves ``/smart/launch``, ``/smart/callback`` and ``/smart/logout``; ``component``
plugs them into the service. The browser session a launch opens is the core's cookie session
(:mod:`ingest.security.sessions`), accepted by the whole API beside bearer tokens.
"""
