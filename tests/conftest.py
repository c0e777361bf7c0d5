"""Test-wide setup. TRITON_INTERPRET must be set before anything imports triton, so that every
kernel test runs on the CPU through the Triton interpreter when no GPU is present."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
