"""The EHR both ways, beside the FHIR export: patients linked by MRN and imported from Groups
(:mod:`ingest.ehr.linker`, :mod:`ingest.ehr.importer`), alerts queued as FHIR Flags
(:mod:`ingest.ehr.flags`); the routes and the component that wires them."""
