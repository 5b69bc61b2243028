"""Cohort ingest (DICOM, tables, staging), ROI geometry and the eight datasets, the patient split,
image stores, and ROI rectangles from mask files. Knows nothing of learn/, analysis/, show/ or synth/."""
