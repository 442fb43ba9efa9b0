"""FHIR R4 export: readings become vital-signs Observations delivered to an EHR.

Mapping (:mod:`fhir_export.mapping`) is pure, and so is :mod:`fhir_export.panels` (which readings
travel together: the blood-pressure panel); :mod:`fhir_export.client` is the only code that
talks to the EHR; :mod:`fhir_export.worker` delivers outbox rows through a small interface
(:mod:`fhir_export.outbox`) that the service implements on its database.
"""
