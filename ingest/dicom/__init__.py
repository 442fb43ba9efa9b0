"""The DICOM export in the service: ECG strips to the PACS through the outbox.

* :mod:`ingest.dicom.reader` — turns a claimed ``dicom`` outbox row into the strip, its patient
  and its clinic (inside the claim's transaction);
* :mod:`ingest.dicom.sender` — one claim: build each object (:mod:`dicom_export.waveform`), store
  it with STOW-RS (:mod:`dicom_export.stow`), record sent, parked or retry on the row;
* :mod:`ingest.dicom.delivery` — the sender's thread and its lease keeper in ``serve``;
* :mod:`ingest.dicom.metrics` — ``rpm_dicom_outbox_rows`` and ``rpm_dicom_export_rows_total``;
* :mod:`ingest.dicom.component` — wires it in when ``RPM_DICOMWEB_URL`` is set.

The rows are written with the strip by the ECG feature (``ingest.ecg.outbox``); the exports API
and page show and requeue them like every other destination's.
"""
