"""Group import benchmark: POST /v1/patients/import of an EHR Group from the local FHIR server.

    .venv/bin/python bench/ehr_import.py [--members 1000] [--runs 3]

Each run: a fresh database, the real service (uvicorn, the EHR component) and the local FHIR
server holding --members Patients in one Group; the import request is timed from the client
(read the Group, read the Patients 100 at a time, register them in one transaction per page).
A second import of the same Group (every member an update) is timed as well.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(ROOT))

from bench._support import fresh_database  # noqa: E402
from ingest.ehr.component import ehr_component  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from tests.support.ehr import MRN_SYSTEM, ehr_patient  # noqa: E402
from tests.support.fhir_test_server import run_fhir_server  # noqa: E402
from tests.support.service import running_service  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    first: list[float] = []
    again: list[float] = []
    with run_fhir_server() as ehr:
        for run in range(args.runs):
            ehr.reset()
            ehr.load_patients(
                [ehr_patient(f"p-{n}", f"MRN-{n:06d}", name=f"Patient {n}") for n in range(args.members)]
            )
            ehr.put_group("cohort", [f"Patient/p-{n}" for n in range(args.members)])
            with fresh_database() as url:
                settings = Settings(
                    _env_file=None,  # type: ignore[call-arg]
                    database_url=url,
                    mqtt_enabled=False,
                    data_dir=Path("/tmp"),
                    fhir_base_url=ehr.base_url,
                    fhir_patient_identifier_system=MRN_SYSTEM,
                )
                with (
                    running_service(settings, factories=[ehr_component]) as svc,
                    svc.client(svc.token("admin")) as admin,
                ):
                    for bucket in (first, again):
                        started = time.perf_counter()
                        answer = admin.post("/v1/patients/import", json={"group": "cohort"}, timeout=600)
                        elapsed = time.perf_counter() - started
                        answer.raise_for_status()
                        body = answer.json()
                        assert body["created"] + body["updated"] == args.members, body
                        bucket.append(elapsed)
            print(f"run {run + 1}: import {first[-1]:.2f} s, again (updates) {again[-1]:.2f} s")  # noqa: T201
    for name, values in (("import", first), ("re-import", again)):
        median = statistics.median(values)
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(  # noqa: T201
            f"{name} of {args.members} patients: median {median:.2f} s"
            f" ({args.members / median:,.0f} patients/s), runs {runs}"
        )


if __name__ == "__main__":
    main()
