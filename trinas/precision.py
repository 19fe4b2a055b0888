"""The precision names the commands take and the torch type each computes in: one map for the engine
(`--precision`), the latency tables (`--latency-device cpu-bf16`, fp16 on CUDA) and training."""

from __future__ import annotations

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
