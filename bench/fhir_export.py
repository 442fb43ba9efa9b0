"""FHIR export benchmark: mapping cost, and delivery to the local FHIR server.

    .venv/bin/python bench/fhir_export.py [--map N] [--deliver N] [--bundle 100]

Reports, in one run:
  * mapping: readings -> Observation dicts (Observations/s; target >= 20,000/s), and the same
    plus Bundle assembly and JSON encoding;
  * delivery: Observations/s through the real export path (outbox claim, mapping, transaction
    Bundle with conditional creates, HTTP, per-entry parsing) in bundles of --bundle;
  * reference: the server's own rate for the same bundles, posted back to back from pre-encoded
    bytes (and its in-process transaction time), i.e. the ceiling the export can reach.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
# This file's name matches the package: drop bench/ from the path, add the repository root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(ROOT))

from devices.models import Reading  # noqa: E402
from fhir_export.auth import NoAuth  # noqa: E402
from fhir_export.bundle import BundleEntry, EntryOutcome, transaction  # noqa: E402
from fhir_export.client import FhirClient, RetryPolicy, build_http_client  # noqa: E402
from fhir_export.mapping import ObservationMapper  # noqa: E402
from fhir_export.models import DeviceInfo, ExportItem  # noqa: E402
from fhir_export.table import build_table  # noqa: E402
from fhir_export.worker import ExportWorker  # noqa: E402
from tests.support.fhir_test_server import run_fhir_server  # noqa: E402
from tests.support.memory_outbox import MemoryOutbox  # noqa: E402

PATIENT = "bench-patient"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
METRICS = [
    ("heart_rate", "/min", 72.0),
    ("spo2", "%", 97.0),
    ("body_temperature", "Cel", 36.9),
    ("respiratory_rate", "/min", 15.0),
    ("body_weight", "kg", 80.2),
    ("blood_glucose", "mg/dL", 101.0),
]


def make_items(n: int, devices: int = 20) -> list[ExportItem]:
    rng = random.Random(42)
    infos = [
        DeviceInfo(device_id=f"bench-{d:03d}", type="monitor", manufacturer="Acme") for d in range(devices)
    ]
    items = []
    for i in range(n):
        info = infos[i % devices]
        at = T0 + timedelta(seconds=i)
        if i % 7 == 0:
            readings = tuple(
                Reading(device_id=info.device_id, metric=m, value=v, unit="mm[Hg]", measured_at=at,
                        original_value=v, original_unit="mm[Hg]")
                for m, v in (("systolic_bp", 120.0 + rng.random() * 20), ("diastolic_bp", 80.0))
            )  # fmt: skip
        else:
            metric, unit, base = METRICS[i % len(METRICS)]
            value = base + rng.random()
            readings = (
                Reading(device_id=info.device_id, metric=metric, value=value, unit=unit,
                        measured_at=at, original_value=value, original_unit=unit,
                        status=("body_movement",) if i % 50 == 0 else ()),
            )  # fmt: skip
        items.append(ExportItem(readings=readings, fhir_patient_id=PATIENT, device=info))
    return items


def bench_mapping(mapper: ObservationMapper, items: list[ExportItem], bundle: int) -> None:
    refs = {i.device.device_id: mapper.device_full_url(i.device.device_id) for i in items}
    start = time.perf_counter()
    mapped = [mapper.observation(i, refs[i.device.device_id]) for i in items]
    map_s = time.perf_counter() - start
    start = time.perf_counter()
    total = 0
    for offset in range(0, len(mapped), bundle):
        chunk = mapped[offset : offset + bundle]
        entries = [BundleEntry(mapper.full_url(m.identifier), m.identifier, m.resource) for m in chunk]
        total += len(json.dumps(transaction(entries), separators=(",", ":")).encode())
    encode_s = time.perf_counter() - start
    n = len(items)
    print(f"mapping only:             {n / map_s:>10,.0f} Observations/s  ({n:,} in {map_s:.2f}s)")
    print(
        f"mapping + bundle + JSON:  {n / (map_s + encode_s):>10,.0f} Observations/s"
        f"  ({total / n:,.0f} bytes/Observation)"
    )


class Recorder:
    """Keeps each bundle the export sends, to replay the same bundles as the reference."""

    def __init__(self, client: FhirClient) -> None:
        self.client = client
        self.bundles: list[dict[str, Any]] = []
        self.devices: dict[str, str] = {}  # fullUrl -> "Device/<id>" the server gave

    def transaction(self, bundle: dict[str, Any]) -> list[EntryOutcome]:
        self.bundles.append(bundle)
        outcomes = self.client.transaction(bundle)
        for entry, outcome in zip(bundle["entry"], outcomes, strict=True):
            if entry["resource"]["resourceType"] == "Device" and outcome.reference:
                self.devices[entry["fullUrl"]] = outcome.reference
        return outcomes


def transaction_of(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def bench_delivery(mapper: ObservationMapper, items: list[ExportItem], bundle: int, workers: int) -> None:
    with run_fhir_server() as server:
        server.put({"resourceType": "Patient", "id": PATIENT})
        with build_http_client() as http:  # warm the server (JIT) on other data, then start clean
            warm = MemoryOutbox()
            for export in make_items(2000, devices=3):
                warm.add(export)
            client = FhirClient(http, server.base_url, NoAuth(), retry=RetryPolicy(attempts=1))
            warm_worker = ExportWorker(warm, client, mapper, bundle_size=bundle)
            while warm_worker.run_once():
                pass
        server.reset()
        server.put({"resourceType": "Patient", "id": PATIENT})
        outbox = MemoryOutbox()
        for export in items:
            outbox.add(export)
        with build_http_client() as http:
            client = FhirClient(http, server.base_url, NoAuth(), retry=RetryPolicy(attempts=1))
            recorder = Recorder(client)

            def work() -> None:
                worker = ExportWorker(outbox, recorder, mapper, bundle_size=bundle)
                while worker.run_once():
                    pass

            threads = [threading.Thread(target=work) for _ in range(workers)]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            deliver_s = time.perf_counter() - start
        sent = outbox.count("sent")
        assert sent == len(items), f"only {sent} of {len(items)} delivered"
        stats = server.stats()
        print(
            f"delivered (export path):  {sent / deliver_s:>10,.0f} Observations/s"
            f"  ({sent:,} in {deliver_s:.2f}s, {stats['transactions']} bundles of {bundle},"
            f" {workers} worker(s),"
            f" server busy {stats['transaction_ms'] / 1000:.2f}s)"
        )

        # Reference: the very bundles the export sent, pre-encoded, posted back to back to a
        # fresh server. The Devices are created first and their new ids swapped into the bundles
        # (same length), so each bundle does exactly the work it did for the export.
        server.reset()
        server.put({"resourceType": "Patient", "id": PATIENT})
        device_entries = [
            e for e in recorder.bundles[0]["entry"] if e["resource"]["resourceType"] == "Device"
        ]
        with httpx.Client(timeout=120) as raw:
            created = raw.post(server.base_url, json=transaction_of(device_entries),
                               headers={"Content-Type": "application/fhir+json"})  # fmt: skip
            created.raise_for_status()
        swap = {}
        for entry, result in zip(device_entries, created.json()["entry"], strict=True):
            new_ref = "/".join(result["response"]["location"].split("/")[:2])
            swap[recorder.devices[entry["fullUrl"]]] = new_ref
        payloads = []
        for sent_bundle in recorder.bundles:
            text = json.dumps(sent_bundle, separators=(",", ":"))
            for old_ref, new_ref in swap.items():
                text = text.replace(f'"{old_ref}"', f'"{new_ref}"')
            payloads.append(text.encode())
        base_stats = server.stats()
        with httpx.Client(timeout=120) as raw:
            start = time.perf_counter()
            for payload in payloads:
                answer = raw.post(server.base_url, content=payload,
                                  headers={"Content-Type": "application/fhir+json"})  # fmt: skip
                answer.raise_for_status()
            raw_s = time.perf_counter() - start
        stats = server.stats()
        print(
            f"server reference (raw):   {len(items) / raw_s:>10,.0f} Observations/s"
            f"  (same bundles pre-encoded; in-server transaction time"
            f" {len(items) / ((stats['transaction_ms'] - base_stats['transaction_ms']) / 1000):,.0f}"
            " Observations/s)"
        )
        print(f"export / server ratio:    {raw_s / deliver_s:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--map", type=int, default=50_000, help="items to map")
    parser.add_argument("--deliver", type=int, default=5_000, help="items to deliver")
    parser.add_argument("--bundle", type=int, default=100, help="bundle size")
    parser.add_argument("--workers", type=int, default=1, help="export workers (threads)")
    args = parser.parse_args()
    mapper = ObservationMapper(build_table())
    bench_mapping(mapper, make_items(args.map), args.bundle)
    bench_delivery(mapper, make_items(args.deliver), args.bundle, args.workers)


if __name__ == "__main__":
    main()
