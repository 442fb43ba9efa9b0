"""An ECG strip as a DICOM ECG waveform object (pydicom), pure: strip, patient and clinic in, bytes out.

The object is a General ECG (SOP Class 1.2.840.10008.5.1.4.1.1.9.1.2), or a 12-lead ECG
(1.2.840.10008.5.1.4.1.1.9.1.1) when all twelve leads are present and the strip fits that IOD's
16384 samples. Modules written (DICOM PS3.3 A.34.3 and A.34.4): Patient, General Study, General
Series, General Equipment, Waveform Identification, Waveform, Acquisition Context (empty: a home
device reports no electrode placement), Waveform Annotation (the device's interpretation, when it
gave one) and SOP Common.

One multiplex group holds every lead: the leads were recorded together at one rate. Samples are
the strip's own integers (signed 16-bit, µV), so the channel sensitivity is 1 µV per count and
nothing is rescaled. Every date and time is the clinic's local time, with its offset
(Timezone Offset From UTC, and the offset written into Acquisition DateTime). Nothing here reads
the clock or a random source: the same strip always gives the same bytes and the same UIDs.

What is the same for every strip of a shape (SOP Class, leads, annotated or not) is built by
:func:`_skeleton`, what depends on the strip, patient and clinic by :func:`_fill`. pydicom spends
most of its time encoding elements one by one (a 12-lead object took ~10 ms, mostly its channel
definitions), so :func:`build_object` encodes each shape's skeleton once and reads it back per
strip: pydicom writes the elements it did not touch as they are. A test holds it to the bytes of
encoding :func:`build_dataset` from scratch.
"""

from __future__ import annotations

import sys
from array import array
from datetime import datetime, timedelta
from functools import lru_cache
from io import BytesIO
from typing import Final

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import dcmread
from pydicom.filewriter import dcmwrite
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from devices.ecg import EcgStrip
from dicom_export.errors import UnsupportedStrip
from dicom_export.leads import LEADS, SCHEME, SCHEME_VERSION, TWELVE_LEADS
from dicom_export.models import ClinicRef, DicomObject, PatientRef
from dicom_export.uids import series_instance_uid, sop_instance_uid, study_instance_uid

TWELVE_LEAD_ECG: Final = "1.2.840.10008.5.1.4.1.1.9.1.1"
GENERAL_ECG: Final = "1.2.840.10008.5.1.4.1.1.9.1.2"
# PS3.3 A.34.3.4 / A.34.4.4: sampling frequency 200-1000 Hz for both; the 12-lead IOD holds at
# most 16384 samples per channel.
MIN_SAMPLING_HZ: Final = 200.0
MAX_SAMPLING_HZ: Final = 1000.0
TWELVE_LEAD_MAX_SAMPLES: Final = 16384
#: µV per sample count: the strip's samples are whole microvolts.
SENSITIVITY_UV: Final = 1
MANUFACTURER_NOTE: Final = "rpm-ingest"
CHARACTER_SET: Final = "ISO_IR 192"  # UTF-8: names may be in any script
_WAVEFORM_DATA: Final = 0x54001010
_PN_DELIMITERS: Final = str.maketrans({"^": " ", "=": " ", "\\": " "})


def sop_class_for(strip: EcgStrip) -> str:
    """12-lead ECG when all twelve leads are there and short enough for it; General ECG otherwise."""
    if set(strip.leads) == TWELVE_LEADS and strip.sample_count <= TWELVE_LEAD_MAX_SAMPLES:
        return TWELVE_LEAD_ECG
    return GENERAL_ECG


Shape = tuple[str, tuple[str, ...], bool]
"""What the constant part of an object depends on: SOP Class, leads, whether it is annotated."""


def shape_of(strip: EcgStrip) -> Shape:
    return (sop_class_for(strip), tuple(strip.leads), bool(strip.interpretation))


def build_dataset(strip: EcgStrip, patient: PatientRef, clinic: ClinicRef) -> Dataset:
    """The strip as an ECG waveform dataset (without file meta information)."""
    _check_rate(strip)
    ds = _skeleton(shape_of(strip))
    _fill(ds, strip, patient, clinic)
    return ds


def build_object(strip: EcgStrip, patient: PatientRef, clinic: ClinicRef) -> DicomObject:
    """The strip as a DICOM Part 10 file (Explicit VR Little Endian), ready for STOW-RS.

    The same bytes as encoding :func:`build_dataset`, made faster: the constant part of each shape
    (the channel definitions above all) is encoded once and read back for each strip, so pydicom
    writes those elements as they are and encodes only what :func:`_fill` sets.
    """
    _check_rate(strip)
    ds = dcmread(BytesIO(_template(shape_of(strip))))
    _fill(ds, strip, patient, clinic)
    return _encode(ds)


def _check_rate(strip: EcgStrip) -> None:
    rate = strip.sample_rate_hz
    if not MIN_SAMPLING_HZ <= rate <= MAX_SAMPLING_HZ:
        raise UnsupportedStrip(
            f"sampling frequency {rate:g} Hz is outside the {MIN_SAMPLING_HZ:g}-{MAX_SAMPLING_HZ:g} Hz "
            "a DICOM ECG waveform allows"
        )


def _skeleton(shape: Shape) -> Dataset:
    """Every element that is the same for all strips of ``shape``."""
    sop_class, leads, annotated = shape
    ds = Dataset()
    # SOP Common
    ds.SpecificCharacterSet = CHARACTER_SET
    ds.SOPClassUID = sop_class
    # General Study: one study per patient and clinic-local day (its time is the day's, unknown)
    ds.StudyTime = ""
    ds.ReferringPhysicianName = ""
    ds.AccessionNumber = ""
    ds.StudyDescription = "Home ECG"
    # Patient: the service keeps no birth date or sex (type 2: present, empty)
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    # General Series: one series (and one instance) per strip
    ds.Modality = "ECG"
    ds.SeriesNumber = 1
    ds.SeriesDescription = f"Home ECG {len(leads)}-lead"
    # General Equipment: the recording device, as far as the service knows it
    ds.Manufacturer = ""
    # Waveform Identification
    ds.InstanceNumber = 1
    # Acquisition Context: type 2, nothing known about electrode placement
    ds.AcquisitionContextSequence = []
    # Waveform: one multiplex group holding every lead, recorded together at one rate
    group = Dataset()
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = len(leads)
    group.MultiplexGroupLabel = "RHYTHM"
    group.ChannelDefinitionSequence = [_channel(name) for name in leads]
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    ds.WaveformSequence = [group]
    # Waveform Annotation: the device's own reading of the strip, for all channels
    if annotated:
        note = Dataset()
        note.ReferencedWaveformChannels = [1, 0]  # multiplex group 1, channel 0 = every channel
        note.AnnotationGroupNumber = 1
        ds.WaveformAnnotationSequence = [note]
    return ds


def _fill(ds: Dataset, strip: EcgStrip, patient: PatientRef, clinic: ClinicRef) -> None:
    """Every element that depends on the strip, its patient or its clinic."""
    strip_id = str(strip.id)
    local = strip.measured_at.astimezone(clinic.timezone)
    offset = _offset(local)
    day = local.strftime("%Y%m%d")
    ds.SOPInstanceUID = sop_instance_uid(strip_id)
    ds.TimezoneOffsetFromUTC = offset
    ds.StudyInstanceUID = study_instance_uid(clinic.id, patient.id, local.date())
    ds.StudyDate = day
    ds.StudyID = day
    ds.PatientName = _person_name(patient.name)
    ds.PatientID = patient.mrn
    ds.IssuerOfPatientID = clinic.id
    ds.SeriesInstanceUID = series_instance_uid(strip_id)
    ds.SeriesDate = day
    ds.SeriesTime = local.strftime("%H%M%S")
    ds.InstitutionName = clinic.name[:64]
    ds.DeviceSerialNumber = strip.device_id[:64]
    ds.ContentDate = day
    ds.ContentTime = local.strftime("%H%M%S.%f")
    ds.AcquisitionDateTime = local.strftime("%Y%m%d%H%M%S.%f") + offset
    group = ds.WaveformSequence[0]
    group.NumberOfWaveformSamples = strip.sample_count
    group.SamplingFrequency = f"{strip.sample_rate_hz:g}"
    group[_WAVEFORM_DATA] = DataElement(_WAVEFORM_DATA, "OW", interleave(list(strip.leads.values())))
    if strip.interpretation:
        ds.WaveformAnnotationSequence[0].UnformattedTextValue = strip.interpretation


@lru_cache(maxsize=256)
def _template(shape: Shape) -> bytes:
    """The skeleton of ``shape`` encoded (placeholder instance UID in its file meta)."""
    ds = _skeleton(shape)
    ds.SOPInstanceUID = "2.25.0"
    return _encode(ds).data


def _encode(ds: Dataset) -> DicomObject:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = MANUFACTURER_NOTE
    ds.file_meta = meta
    buffer = BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return DicomObject(
        sop_class_uid=ds.SOPClassUID,
        sop_instance_uid=ds.SOPInstanceUID,
        series_instance_uid=ds.get("SeriesInstanceUID", ""),
        study_instance_uid=ds.get("StudyInstanceUID", ""),
        data=buffer.getvalue(),
    )


def _channel(lead: str) -> Dataset:
    code = LEADS.get(lead)
    if code is None:  # the strip model admits only the 12-lead names; a guard, not a path
        raise UnsupportedStrip(f"lead {lead!r} has no SCPECG code")
    source = Dataset()
    source.CodeValue = code.value
    source.CodingSchemeDesignator = SCHEME
    source.CodingSchemeVersion = SCHEME_VERSION
    source.CodeMeaning = code.meaning
    units = Dataset()
    units.CodeValue = "uV"
    units.CodingSchemeDesignator = "UCUM"
    units.CodeMeaning = "microvolt"
    channel = Dataset()
    channel.ChannelLabel = lead
    channel.ChannelSourceSequence = [source]
    channel.ChannelSensitivity = str(SENSITIVITY_UV)
    channel.ChannelSensitivityUnitsSequence = [units]
    channel.ChannelSensitivityCorrectionFactor = "1"
    channel.ChannelBaseline = "0"
    channel.ChannelSampleSkew = "0"
    channel.WaveformBitsStored = 16
    return channel


def interleave(leads: list[array[int]]) -> bytes:
    """Samples multiplexed as the Waveform Data wants them (sample 0 of every channel, then sample
    1, ...), little-endian int16; array slicing keeps it in C, with no per-sample Python."""
    if len(leads) == 1:
        block = leads[0]
    else:
        n = len(leads)
        block = array("h", bytes(2 * n * len(leads[0])))
        for i, samples in enumerate(leads):
            block[i::n] = samples
    if sys.byteorder != "little":  # pragma: no cover - x86 and ARM are little-endian
        block = array("h", block)
        block.byteswap()
    return block.tobytes()


def _offset(local: datetime) -> str:
    delta = local.utcoffset() or timedelta(0)
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{mins:02d}"


def _person_name(name: str | None) -> str:
    """The service keeps one display string: "Family, Given" or "Given ... Family" become
    ``Family^Given`` (a single word is the family name). DICOM's delimiters become spaces."""
    if not name:
        return ""
    clean = " ".join(name.translate(_PN_DELIMITERS).split())
    if "," in clean:
        family, _, given = clean.partition(",")
    else:
        given, _, family = clean.rpartition(" ")
    family, given = family.strip(), given.strip()
    return (f"{family}^{given}" if given else family)[:64]
