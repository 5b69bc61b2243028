"""Synthetic NPC cohort with known ground truth (the embedded default): what the rest of the package
uses. The generator itself is :mod:`npc_lib.synth.generate`; the clinical draw, the phantom, the DICOM
writer and the audit of where the planted pixels lie are the other modules of this folder."""
from npc_lib.synth.generate import (FEATURES, GENERATOR_VERSION, SynthConfig, ensure_cohort, generate_cohort,
                                    rim_intensity_leak)

__all__ = ["FEATURES", "GENERATOR_VERSION", "SynthConfig", "ensure_cohort", "generate_cohort", "rim_intensity_leak"]
