#!/usr/bin/env python3
"""Writes a synthetic head-and-body CT series for bench/imaging_decode.sh:
N slices of 512 x 512 signed 16-bit, as OUT/raw (explicit VR little endian),
OUT/rle (RLE Lossless) and, for the first J2K_SLICES, OUT/j2k (JPEG 2000
lossless). A smooth phantom with noise, so RLE compresses like real CT does
(poorly: noise), not like a constant image.

  imaging_make_ct_series.py OUT N J2K_SLICES
"""
import sys
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless,
                         CTImageStorage, generate_uid)


def phantom(z, n, rng):
    y, x = np.mgrid[-256:256, -256:256].astype(np.float32)
    img = np.full((512, 512), -1000.0, np.float32)
    r = 200 - 40 * abs(z / n - 0.5)
    body = (x / r) ** 2 + (y / (0.8 * r)) ** 2 <= 1
    img[body] = 40
    skull = ((x / (r - 10)) ** 2 + (y / (0.8 * r - 10)) ** 2 > 1) & body
    img[skull] = 1000
    img += rng.normal(0, 15, img.shape)
    return (img + 1024).clip(0, 4095).astype(np.int16)


def write(out: Path, n: int, j2k_slices: int):
    rng = np.random.default_rng(7)
    study, series = generate_uid(), generate_uid()
    for sub in ("raw", "rle", "j2k"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for z in range(n):
        ds = Dataset()
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality = "CT"
        ds.InstanceNumber = z + 1
        ds.ImagePositionPatient = [-250, -250, z * 1.25]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.98, 0.98]
        ds.SliceThickness = 1.25
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.WindowCenter, ds.WindowWidth = 40, 80
        ds.PixelData = phantom(z, n, rng).tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(out / "raw" / f"{z:04}.dcm", enforce_file_format=True)
        ds.compress(RLELossless, encoding_plugin="pylibjpeg")
        ds.save_as(out / "rle" / f"{z:04}.dcm", enforce_file_format=True)
        if z < j2k_slices:
            ds.decompress()
            ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
            ds.save_as(out / "j2k" / f"{z:04}.dcm", enforce_file_format=True)


if __name__ == "__main__":
    write(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
