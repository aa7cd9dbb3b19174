"""Executors: workers die with their driver and show warnings as the CLI does; a sweep that
loses every unit raises."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from safes_framework.errors import ExecutorError
from safes_framework.evaluation import MetricSpec, Protocol
from safes_framework.sweeps import SweepConfig, run_sweep
from safes_framework.sweeps import running as sweep_running

SMALL = SweepConfig(
    datasets=("compas",),
    epsilons=(1.0,),
    no_dp=False,
    repeats=2,
    protocol=Protocol(
        synthesizer="mst",
        fairness=None,
        metrics=(MetricSpec("mod", "mean_outcome_difference"),),
    ),
)


def _children(pid: int) -> dict[int, str]:
    """Descendants of `pid` that are alive (not zombies), with their command lines."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                found[child] = _cmdline(child)
                frontier.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigkill_of_the_driver_leaves_no_worker_and_no_resource_tracker(tmp_path: Path) -> None:
    driver = subprocess.Popen(
        [
            sys.executable, "-m", "safes_framework.cli", "sweep", "--dataset", "compas",
            "--synthesizer", "mst", "--fairness", "tot", "--repeats", "20",
            "--log10-epsilons=-1,0,1", "--workers", "2", "--quiet", "--out", str(tmp_path / "r"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        workers: dict[int, str] = {}
        while time.monotonic() < deadline:  # until both workers are busy with units
            family = _children(driver.pid)
            workers = {p: c for p, c in family.items() if "spawn_main" in c}
            if len(workers) == 2 and all(_cpu_seconds(p) > 4 for p in workers):
                break
            assert driver.poll() is None, "the sweep ended before the test could kill it"
            time.sleep(0.2)
        else:
            pytest.fail(f"workers did not start: {family}")
        family = _children(driver.pid)
        assert any("resource_tracker" in c for c in family.values()), family
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    left = set(family)
    deadline = time.monotonic() + 30
    while _alive(left) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = {p: family[p] for p in _alive(left)}
    for pid in survivors:  # leave the machine clean even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert survivors == {}


def test_a_sweep_that_loses_every_unit_raises_the_first_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def losing(units, workers, strict):  # type: ignore[no-untyped-def]
        for i, unit in enumerate(units):
            yield unit, RuntimeError(f"worker {i} died")

    monkeypatch.setattr(sweep_running, "_run_local", losing)
    with pytest.raises(ExecutorError, match=r"every unit was lost .*2 of 2.*worker 0 died") as info:
        run_sweep(SMALL, tmp_path, executor="local")
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_sweep_that_loses_some_units_returns_them_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safes_framework.evaluation import run_unit

    def half(units, workers, strict):  # type: ignore[no-untyped-def]
        yield units[0], run_unit(units[0])
        yield units[1], RuntimeError("worker died")

    monkeypatch.setattr(sweep_running, "_run_local", half)
    summary = run_sweep(SMALL, tmp_path, executor="local")
    assert (summary.units_done, summary.units_lost) == (1, 1)


NO_MAIN_GUARD = textwrap.dedent(
    """
    from safes_framework.evaluation import MetricSpec, Protocol
    from safes_framework.sweeps import SweepConfig, run_sweep

    config = SweepConfig(
        datasets=("compas",), epsilons=(1.0,), no_dp=False, repeats=1,
        protocol=Protocol(synthesizer="mst", fairness=None,
                          metrics=(MetricSpec("mod", "mean_outcome_difference"),)),
    )
    summary = run_sweep(config, "results", executor="local", workers=1)
    print("returned normally", summary.units_done)
    """
)


@pytest.mark.slow
def test_a_script_without_a_main_guard_raises_with_the_fix(tmp_path: Path) -> None:
    script = tmp_path / "sweep_script.py"
    script.write_text(NO_MAIN_GUARD)
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0 and "returned normally" not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("safes_framework.errors.ExecutorError: every unit was lost"), last
    assert 'if __name__ == "__main__":' in last
    # each worker says so too, instead of multiprocessing's bootstrapping riddle
    assert "ConfigError: run_sweep was called while a worker process was importing" in proc.stderr


DELTA_SWEEP = """
[sweep]
datasets = ["compas"]
epsilons = [1.0]
no_dp = false
no_fairness = true
etas = []
repeats = 1
delta = 0.01

[synthesizer]
name = "mst"

[fairness]
name = "none"

[metrics]
use = ["mean_outcome_difference"]
"""


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "dask"])
def test_workers_show_warnings_as_one_cli_line(tmp_path: Path, executor: str) -> None:
    if executor == "dask":
        pytest.importorskip("distributed")
    config = tmp_path / "sweep.toml"
    config.write_text(DELTA_SWEEP)
    proc = subprocess.run(
        [sys.executable, "-m", "safes_framework.cli", "sweep", str(config),
         "--out", str(tmp_path / "out"), "--executor", executor, "--workers", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert any(ln.startswith("safes: warning: delta=0.01 is not below 1/n") for ln in lines), lines
    assert not [ln for ln in lines if "PrivacyWarning" in ln or "warnings.warn" in ln], lines
