"""The user-facing API: files in and out, conversion, codec policies."""

from holotensor.api.calibrate import (
    calibrate_,
    calibration_policy,
    collect_hessians,
    load_hessians,
    save_hessians,
)
from holotensor.api.convert import convert_to_hct, convert_to_safetensors, find_checkpoint
from holotensor.api.files import load_file, safe_open, save_file
from holotensor.api.policy import Policy, resolve_codec

__all__ = [
    "Policy",
    "calibrate_",
    "calibration_policy",
    "collect_hessians",
    "convert_to_hct",
    "convert_to_safetensors",
    "find_checkpoint",
    "load_file",
    "load_hessians",
    "resolve_codec",
    "safe_open",
    "save_file",
    "save_hessians",
]
