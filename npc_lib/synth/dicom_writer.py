"""Write one synthetic patient as a valid MR Image Storage series (explicit VR little endian)."""
from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from npc_lib import __version__



def uid(*parts) -> str:
    """Deterministic UID in the 2.25 (UUID-derived) form from the given parts."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


IMPLEMENTATION_UID = uid("npc-dm-study", "implementation class")


def synthetic_identifiers(rng, patient_id: str, age: int, study_date: dt.date) -> dict:
    """Fake but realistic-looking PHI, planted so that its scrubbing can be tested."""
    birth = study_date - dt.timedelta(days=int(age * 365.25 + rng.integers(0, 365)))
    return {
        "PatientName": f"SYNTH^{patient_id}",
        "PatientID": f"MRN{int(rng.integers(10**7, 10**8))}",
        "PatientBirthDate": birth.strftime("%Y%m%d"),
        "AccessionNumber": f"ACC{int(rng.integers(10**8, 10**9))}",
        "OtherPatientIDs": f"HOSP-{int(rng.integers(10**5, 10**6))}",
        "ReferringPhysicianName": "SYNTH^REFERRER",
        "InstitutionName": "Synthetic Teaching Hospital",
    }


def write_series(folder: Path, pixels: np.ndarray, *, seed: int, patient_id: str, sex: str,
                 age: int, identifiers: dict, study_date: dt.date, pixel_mm: float,
                 slice_mm: float) -> list[str]:
    """Write ``pixels`` [S, M, M] uint16 as S files; return SOPInstanceUIDs in slice order.

    Slice 0 is the most cranial; z (patient +S) decreases by ``slice_mm`` per slice. File
    names are derived from the UID, so directory order is not slice order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n_slices, rows, cols = pixels.shape
    study_uid = uid(seed, patient_id, "study")
    series_uid = uid(seed, patient_id, "series")
    frame_uid = uid(seed, patient_id, "frame")
    x0 = -(cols - 1) / 2 * pixel_mm
    y0 = -(rows - 1) / 2 * pixel_mm
    z_top = (n_slices - 1) / 2 * slice_mm
    sops = []
    for k in range(n_slices):
        sop = uid(seed, patient_id, "slice", k)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = IMPLEMENTATION_UID
        meta.ImplementationVersionName = f"NPCDM_{__version__}"[:16]
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "093000"
        ds.Modality = "MR"
        ds.Manufacturer = "npc-dm-study synthetic phantom"
        for key, value in identifiers.items():
            setattr(ds, key, value)
        ds.PatientSex = sex
        ds.PatientAge = f"{int(age):03d}Y"
        ds.StudyDescription = "NASOPHARYNX NECK MRI (SYNTHETIC)"
        ds.SeriesDescription = "AX T1 SE +C (SYNTHETIC)"
        ds.BodyPartExamined = "HEADNECK"
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "SK"
        ds.MRAcquisitionType = "2D"
        ds.MagneticFieldStrength = 1.5
        ds.RepetitionTime = 550
        ds.EchoTime = 12
        ds.ContrastBolusAgent = "GADOLINIUM (SYNTHETIC)"
        ds.SliceThickness = slice_mm
        ds.SpacingBetweenSlices = slice_mm
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.StudyID = "1"
        ds.SeriesNumber = 3
        ds.InstanceNumber = k + 1
        z = z_top - k * slice_mm
        ds.ImagePositionPatient = [round(x0, 4), round(y0, 4), round(z, 4)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = round(z, 4)
        ds.PositionReferenceIndicator = ""
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.PixelSpacing = [round(pixel_mm, 6), round(pixel_mm, 6)]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.WindowCenter = int(np.percentile(pixels[k], 60))
        ds.WindowWidth = max(1, int(np.percentile(pixels[k], 99.5)))
        ds.PixelData = np.ascontiguousarray(pixels[k], dtype="<u2").tobytes()
        name = f"IM{sop.rsplit('.', 1)[-1][-12:]}.dcm"
        pydicom.dcmwrite(folder / name, ds, enforce_file_format=True)
        sops.append(sop)
    return sops
