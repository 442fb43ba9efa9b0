"""The ECG waveform object: its modules, codes, samples and UIDs, read back by pydicom and checked
by readers that share no code with ours (dcmtk's dcmdump, dicom3tools' dciodvfy)."""

from __future__ import annotations

import re
import uuid
from array import array
from dataclasses import replace
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pydicom
import pytest
from pydicom import config

from devices.ecg import EcgStrip
from dicom_export import UnsupportedStrip, build_dataset, build_object
from dicom_export.uids import series_instance_uid, sop_instance_uid, study_instance_uid
from dicom_export.waveform import _encode, interleave
from tests.support.dicom import CLINIC, PATIENT, dciodvfy, dcmdump, make_strip

# DICOM PS3.16 CID 3001 "ECG Leads", coding scheme SCPECG: literal here so the test pins the codes.
CID_3001 = {
    "I": ("5.6.3-9-1", "Lead I"),
    "II": ("5.6.3-9-2", "Lead II"),
    "III": ("5.6.3-9-61", "Lead III"),
    "aVR": ("5.6.3-9-62", "Lead aVR"),
    "aVL": ("5.6.3-9-63", "Lead aVL"),
    "aVF": ("5.6.3-9-64", "Lead aVF"),
    "V1": ("5.6.3-9-3", "Lead V1"),
    "V2": ("5.6.3-9-4", "Lead V2"),
    "V3": ("5.6.3-9-5", "Lead V3"),
    "V4": ("5.6.3-9-6", "Lead V4"),
    "V5": ("5.6.3-9-7", "Lead V5"),
    "V6": ("5.6.3-9-8", "Lead V6"),
}
GENERAL_ECG = "1.2.840.10008.5.1.4.1.1.9.1.2"
TWELVE_LEAD_ECG = "1.2.840.10008.5.1.4.1.1.9.1.1"


def read(data: bytes) -> pydicom.Dataset:
    with config.strict_reading():
        return pydicom.dcmread(BytesIO(data))


def decoded(ds: pydicom.Dataset) -> dict[str, list[int]]:
    """Waveform Data demultiplexed by hand: channel label -> samples (no numpy involved)."""
    group = ds.WaveformSequence[0]
    values = array("h", group.WaveformData)
    n = group.NumberOfWaveformChannels
    return {ch.ChannelLabel: list(values[i::n]) for i, ch in enumerate(group.ChannelDefinitionSequence)}


def test_a_single_lead_strip_is_a_general_ecg_with_every_module() -> None:
    strip = make_strip(1, seconds=30, rate=300)
    obj = build_object(strip, PATIENT, CLINIC)
    ds = read(obj.data)
    sid = str(strip.id)

    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"  # Explicit VR Little Endian
    assert ds.file_meta.MediaStorageSOPClassUID == GENERAL_ECG
    # SOP Common
    assert (ds.SOPClassUID, ds.SOPInstanceUID, ds.SpecificCharacterSet) == (
        GENERAL_ECG, sop_instance_uid(sid), "ISO_IR 192"
    )  # fmt: skip
    assert ds.TimezoneOffsetFromUTC == "+0100"
    # Patient
    assert (ds.PatientID, str(ds.PatientName), ds.IssuerOfPatientID) == ("MRN-1001", "Doe^Jane", "north")
    assert ds.PatientBirthDate == "" and ds.PatientSex == ""
    # General Study: the clinic-local day
    assert ds.StudyInstanceUID == study_instance_uid("north", PATIENT.id, datetime(2026, 12, 1).date())
    assert (ds.StudyDate, ds.StudyID, ds.StudyDescription) == ("20261201", "20261201", "Home ECG")
    # General Series and Equipment
    assert (ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber) == ("ECG", series_instance_uid(sid), 1)
    assert (ds.InstitutionName, ds.DeviceSerialNumber) == ("North Cardiology", "ecg-card-1")
    # Waveform Identification: 08:00 UTC is 09:00 in Berlin, written with its offset
    assert ds.AcquisitionDateTime == "20261201090000.000000+0100"
    assert (ds.ContentDate, ds.ContentTime, ds.InstanceNumber) == ("20261201", "090000.000000", 1)
    # Acquisition Context (type 2: present, empty)
    assert "AcquisitionContextSequence" in ds and len(ds.AcquisitionContextSequence) == 0
    # Waveform
    [group] = ds.WaveformSequence
    assert group.WaveformOriginality == "ORIGINAL"
    assert (group.NumberOfWaveformChannels, group.NumberOfWaveformSamples) == (1, 9000)
    assert float(group.SamplingFrequency) == 300.0
    assert (group.WaveformBitsAllocated, group.WaveformSampleInterpretation) == (16, "SS")
    [channel] = group.ChannelDefinitionSequence
    [source] = channel.ChannelSourceSequence
    assert (source.CodeValue, source.CodingSchemeDesignator, source.CodeMeaning) == (
        "5.6.3-9-1", "SCPECG", "Lead I"
    )  # fmt: skip
    assert float(channel.ChannelSensitivity) <= 5  # µV per count: the contract's quantisation step
    assert float(channel.ChannelSensitivity) == 1
    [unit] = channel.ChannelSensitivityUnitsSequence
    assert (unit.CodeValue, unit.CodingSchemeDesignator) == ("uV", "UCUM")
    assert float(channel.ChannelSensitivityCorrectionFactor) == 1 and float(channel.ChannelBaseline) == 0
    assert channel.WaveformBitsStored == 16
    assert decoded(ds) == {"I": list(strip.leads["I"])}
    # Waveform Annotation: the device's interpretation, for every channel
    [note] = ds.WaveformAnnotationSequence
    assert (note.UnformattedTextValue, list(note.ReferencedWaveformChannels)) == ("sinus_rhythm", [1, 0])
    assert (obj.sop_instance_uid, obj.series_instance_uid, obj.study_instance_uid) == (
        ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID
    )  # fmt: skip


def test_all_twelve_leads_make_a_12_lead_ecg_coded_from_cid_3001() -> None:
    strip = make_strip(12, seconds=10, rate=500)
    ds = read(build_object(strip, PATIENT, CLINIC).data)
    assert ds.SOPClassUID == TWELVE_LEAD_ECG
    channels = ds.WaveformSequence[0].ChannelDefinitionSequence
    coded = {
        ch.ChannelLabel: (ch.ChannelSourceSequence[0].CodeValue, ch.ChannelSourceSequence[0].CodeMeaning)
        for ch in channels
    }
    assert coded == CID_3001
    assert [ch.ChannelLabel for ch in channels] == list(CID_3001)  # 12-lead order
    assert {ch.ChannelSourceSequence[0].CodingSchemeDesignator for ch in channels} == {"SCPECG"}
    assert decoded(ds) == {name: list(values) for name, values in strip.leads.items()}


def test_twelve_leads_longer_than_the_12_lead_iod_allows_are_a_general_ecg() -> None:
    # The 12-lead ECG IOD holds at most 16384 samples per channel: 40 s at 500 Hz is 20000.
    strip = make_strip(12, seconds=40, rate=500)
    assert read(build_object(strip, PATIENT, CLINIC).data).SOPClassUID == GENERAL_ECG
    assert read(build_object(make_strip(6), PATIENT, CLINIC).data).SOPClassUID == GENERAL_ECG


def test_the_objects_pass_dcmdump_and_dciodvfy(tmp_path: Path) -> None:
    cases = {
        "one-lead": make_strip(1, seconds=30, rate=300),
        "six-lead-60s": make_strip(6, seconds=60, rate=500),
        "twelve-lead": make_strip(12, seconds=10, rate=1000),
        "no-interpretation": make_strip(2, seconds=0.5, rate=200, interpretation=None),
    }
    for name, strip in cases.items():
        path = tmp_path / f"{name}.dcm"
        path.write_bytes(build_object(strip, PATIENT, CLINIC).data)
        dump = dcmdump(path)
        assert "(0010,0020) LO [MRN-1001]" in dump
        assert "(0008,0100) SH [5.6.3-9-1]" in dump
        assert re.search(r"\(003a,001a\) DS \[(300|500|1000|200)\]", dump)
        report = dciodvfy(path)
        errors = [line for line in report if line.startswith("Error")]
        assert not errors, f"{name}: {report}"
        expected = "TwelveLeadECG" if name == "twelve-lead" else "GeneralECG"
        assert expected in report, report


def test_pydicom_builds_and_writes_it_with_validation_raising() -> None:
    """pydicom's own value checks (VR, length, character repertoire) as errors, not warnings."""
    before = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.RAISE
    try:
        for strip in (make_strip(3, seconds=2), make_strip(12, seconds=1)):
            ds = build_dataset(strip, PATIENT, CLINIC)
            assert read(build_object(strip, PATIENT, CLINIC).data) == ds
    finally:
        config.settings.writing_validation_mode = before


def test_the_same_strip_gives_the_same_bytes_and_uids() -> None:
    first = build_object(make_strip(2), PATIENT, CLINIC)
    again = build_object(make_strip(2), PATIENT, CLINIC)
    assert first == again
    for uid in (first.sop_instance_uid, first.series_instance_uid, first.study_instance_uid):
        assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]{0,38})", uid) and len(uid) <= 64
    assert len({first.sop_instance_uid, first.series_instance_uid, first.study_instance_uid}) == 3


def test_uids_are_pinned_to_their_names() -> None:
    # Changing the namespace or the names would re-store every strip as new objects: pinned.
    assert sop_instance_uid("5f1c6a3e-0000-5000-8000-000000000001") == sop_instance_uid(
        "5f1c6a3e-0000-5000-8000-000000000001"
    )
    assert sop_instance_uid("a") != sop_instance_uid("b") != series_instance_uid("a")
    # The documented derivation: 2.25.<uuid5(uuid5(URL, "urn:rpm-ingest:dicom"), name) as an integer>.
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, "urn:rpm-ingest:dicom")
    name = "ecg-strip/5f1c6a3e-0000-5000-8000-000000000001/instance"
    assert f"2.25.{uuid.uuid5(namespace, name).int}" == "2.25.316478767529424222117975490082760445242"
    assert sop_instance_uid("5f1c6a3e-0000-5000-8000-000000000001") == (
        "2.25.316478767529424222117975490082760445242"
    )


def test_a_study_is_one_patient_and_one_clinic_local_day() -> None:
    new_york = replace(CLINIC, timezone=ZoneInfo("America/New_York"))
    late = make_strip(1, seconds=1, measured_at=datetime(2026, 12, 1, 4, 0, tzinfo=UTC))  # 23:00 on the 30th
    early = make_strip(1, seconds=1, measured_at=datetime(2026, 12, 1, 6, 0, tzinfo=UTC))  # 01:00 on the 1st
    later = make_strip(1, seconds=1, measured_at=datetime(2026, 12, 1, 20, 0, tzinfo=UTC))  # 15:00 on the 1st
    a, b, c = (build_object(s, PATIENT, new_york) for s in (late, early, later))
    assert a.study_instance_uid != b.study_instance_uid == c.study_instance_uid
    assert a.series_instance_uid != b.series_instance_uid != c.series_instance_uid
    assert read(a.data).StudyDate == "20261130" and read(a.data).TimezoneOffsetFromUTC == "-0500"
    other = replace(PATIENT, id="0d6c1d1e-7f57-4d59-9a38-5b6a2ef0c002")
    assert build_object(early, other, new_york).study_instance_uid != b.study_instance_uid


@pytest.mark.parametrize("rate", [100.0, 150.0, 199.0])
def test_a_rate_below_the_iods_200_hz_is_refused_with_the_reason(rate: float) -> None:
    with pytest.raises(UnsupportedStrip, match=r"outside the 200-1000 Hz"):
        build_object(make_strip(1, seconds=5, rate=rate), PATIENT, CLINIC)


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("Jane Doe", "Doe^Jane"),
        ("Doe, Jane", "Doe^Jane"),
        ("Cher", "Cher"),
        ("Mary Ann  Smith", "Smith^Mary Ann"),
        ("Zoë Ångström-Łukasz", "Ångström-Łukasz^Zoë"),
        ("a^b=c\\d", "d^a b c"),
        (None, ""),
        ("x" * 300, "x" * 64),
    ],
)
def test_patient_names_become_person_names(name: str | None, written: str, tmp_path: Path) -> None:
    data = build_object(make_strip(1, seconds=1), replace(PATIENT, name=name), CLINIC).data
    assert str(read(data).PatientName) == written
    path = tmp_path / "name.dcm"
    path.write_bytes(data)
    assert not [line for line in dciodvfy(path) if line.startswith("Error")]


def test_interleave_multiplexes_sample_by_sample() -> None:
    leads = [array("h", [1, 2, 3]), array("h", [-1, -2, -3]), array("h", [32767, -32768, 0])]
    assert array("h", interleave(leads)).tolist() == [1, -1, 32767, 2, -2, -32768, 3, -3, 0]
    assert interleave([array("h", [258])]) == b"\x02\x01"  # little-endian


@pytest.mark.parametrize(
    "strip",
    [
        make_strip(1, seconds=30, rate=300),
        make_strip(1, seconds=1, interpretation=None),
        make_strip(("II", "V5"), seconds=3, rate=1000, interpretation="Vorhofflimmern – ärztlich prüfen"),
        make_strip(12, seconds=10),
        make_strip(12, seconds=40),
    ],
    ids=["one-lead", "no-interpretation", "two-leads-utf8", "twelve", "twelve-long"],
)
def test_the_fast_path_writes_exactly_what_the_dataset_says(strip: EcgStrip) -> None:
    """build_object reuses each shape's encoded constant part; it must equal encoding the dataset
    built from scratch, byte for byte, whatever strips of the same shape came before."""
    for other in (make_strip(1, seconds=2, interpretation="x" * 500), strip):
        build_object(other, replace(PATIENT, name="Previous Patient"), CLINIC)
    fast = build_object(strip, PATIENT, CLINIC)
    ds = build_dataset(strip, PATIENT, CLINIC)
    assert fast == _encode(ds)
