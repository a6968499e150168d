"""Streaming FedAvg's peak memory stays under 3x the model size, for K = 8 and K = 32.

Measured in a fresh subprocess: the peak resident set (VmHWM) during aggregation minus the
resident set after the imports. The high-water mark is reset before the work through
``/proc/self/clear_refs`` where the kernel allows it; otherwise the figure is VmHWM minus
VmRSS, which can only overstate the peak.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fl_gitops.tensors import serialize, sha256_digest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc"),
]

PARAMS = 8_000_000  # 32 MB of float32, in four tensors
SHAPES = {"a": (2000, 1000), "b": (2000, 1000), "c": (1000, 1000), "d": (3000, 1000)}

MEASURE = r"""
import json, sys
from pathlib import Path
from fl_gitops.aggregate import aggregate_round

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

directory, k = Path(sys.argv[1]), int(sys.argv[2])
updates = []
for i in range(k):
    meta = json.loads((directory / f"c{i:02d}.json").read_text())
    updates.append((f"c{i:02d}", directory / f"c{i:02d}.safetensors", meta))
baseline = status("VmRSS")
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
result = aggregate_round(directory / "base.safetensors", updates, strategy="fedavg", round=1)
assert not result.rejected, result.rejected
print(json.dumps({"peak": status("VmHWM") - baseline, "model": len(result.model)}))
"""


@pytest.fixture(scope="module")
def updates_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("memory")
    rng = np.random.default_rng(0)
    base = {n: rng.standard_normal(s, dtype=np.float32) for n, s in SHAPES.items()}
    assert sum(a.size for a in base.values()) == PARAMS
    base_bytes = serialize(base)
    (directory / "base.safetensors").write_bytes(base_bytes)
    for i in range(32):
        data = serialize({n: a + np.float32(i / 100) for n, a in base.items()})
        (directory / f"c{i:02d}.safetensors").write_bytes(data)
        meta = {
            "round": 1,
            "cluster": f"c{i:02d}",
            "base_model": sha256_digest(base_bytes),
            "num_examples": 10 + i,
            "sha256": sha256_digest(data),
        }
        (directory / f"c{i:02d}.json").write_text(json.dumps(meta))
    return directory


def peak(directory: Path, k: int) -> tuple[int, int]:
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(directory), str(k)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    out = json.loads(proc.stdout)
    return out["peak"], out["model"]


def test_peak_memory_stays_under_three_models_whatever_k(updates_dir: Path):
    peak8, model = peak(updates_dir, 8)
    peak32, _ = peak(updates_dir, 32)
    assert peak8 < 3 * model, f"K=8: {peak8 / model:.2f}x the model"
    assert peak32 < 3 * model, f"K=32: {peak32 / model:.2f}x the model"
    # Memory does not grow with K: four times the updates, about the same peak.
    assert peak32 < peak8 + model / 2, (peak8 / model, peak32 / model)
