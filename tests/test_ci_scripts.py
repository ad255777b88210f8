""".ci/ scripts: they parse, and .ci/gpu-lease's stages, limits and summary work (with fake commands:
no GPU, compiler or PyTorch is needed)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CI = Path(__file__).resolve().parent.parent / ".ci"
pytestmark = pytest.mark.skipif(not CI.is_dir() or shutil.which("bash") is None,
                                reason="needs the checkout's .ci/ folder and bash")


@pytest.mark.parametrize("script", ["run", "gpu", "gpu-lease", "sanitize"])
def test_script_parses(script):
    subprocess.run(["bash", "-n", str(CI / script)], check=True)


def _fake_command(bin_dir, name, body):
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def _run_lease(tmp_path, python_body, budget="60"):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Every command the script runs, replaced by a script that says what it was asked and how it ends.
    _fake_command(bin_dir, "python3", python_body)
    _fake_command(bin_dir, "pytest", 'echo "pytest $*"; exit 3')
    _fake_command(bin_dir, "fastnn", 'echo "fastnn $*"; echo "test accuracy 99.10% (loss 0.0300), training 1000 images/s"')
    _fake_command(bin_dir, "nvidia-smi", 'echo "NVIDIA H200"')
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(CI / "gpu-lease"), str(out), budget], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    return proc, out


def test_gpu_lease_runs_every_stage_and_reports_each(tmp_path):
    python = 'case "$*" in *"pip install"*) echo built;; *"benchmarks/run.py"*) echo "bench $*";; ' \
             '*) echo "python3 $*";; esac'
    proc, out = _run_lease(tmp_path, python)
    def row(stage):  # the stage's line in the closing table
        return next(line for line in proc.stdout.splitlines()[::-1] if line.startswith(stage))

    assert "passed" in row("build (sm_90)")
    assert "passed" in row("cuda_available")
    assert "exit 3" in row("pytest -m cuda")  # a failure is noted...
    assert "passed" in row("training benchmarks")  # ...and the later stages still run
    assert "passed" in row("lenet5 --cuda-graph")
    assert "no compute-sanitizer" in row("memcheck")
    assert "test accuracy 99.10%" in proc.stdout
    logs = sorted(p.name for p in out.iterdir())
    assert len(logs) <= 8  # what a lease brings back
    assert any(name.startswith("cuda-tests-NVIDIA-H200-") for name in logs)
    assert "--family training" in next(out.glob("bench-training-*.txt")).read_text()


def test_gpu_lease_stops_when_the_build_fails(tmp_path):
    proc, out = _run_lease(tmp_path, 'case "$*" in *"pip install"*) echo "no nvcc" >&2; exit 1;; esac')
    assert proc.returncode == 1
    assert any(line.startswith("build (sm_90)") and "exit 1" in line for line in proc.stdout.splitlines())
    assert "pytest -m cuda" not in proc.stdout
    assert "no nvcc" in next(out.glob("build-*.txt")).read_text()
