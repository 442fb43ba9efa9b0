"""HL7 v2 over MLLP for hospital interface engines (docs/hl7.md).

- ORU^R01 out: :mod:`ingest.hl7.sender` claims the ``hl7`` destination's outbox rows and sends each
  over one kept-open MLLP connection (:mod:`ingest.hl7.connection`), waiting for its ACK;
  :mod:`ingest.hl7.reader` turns a claimed row into the message's input and keeps each patient's
  results in order.
- ADT in: :mod:`ingest.hl7.listener` accepts MLLP connections on ``RPM_HL7_LISTEN``;
  :mod:`ingest.hl7.adt` answers each message, :mod:`ingest.hl7.adt_store` applies it.
- :mod:`ingest.hl7.component` wires both into ``serve``.

The messages themselves are built and read by the pure package ``hl7_export``.
"""
