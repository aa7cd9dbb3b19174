"""Benchmark: `safes run` end to end on large Parquet tables, wall time and peak RSS.

Each run is one `safes run` process under `/usr/bin/time -v` (wall clock and maximum
resident set size of the whole process, reading, encoding, fitting, sampling and writing
included), `nice`d, with the 1-minute load average recorded before and after. The tables
come from `make_large_tables.py` (adult-full rows resampled; the schema JSON beside each).

Usage:
    python benchmarks/bench_scale.py --data /data/adult-10000000.parquet --synthesizer mst
    python benchmarks/bench_scale.py --data /data/adult-1000000.parquet --synthesizer aim \\
        --backend duckdb --out-format parquet
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def run(data: Path, synthesizer: str, backend: str, out_format: str, seed: int,
        extra: list[str]) -> dict:
    """One `safes run` under /usr/bin/time -v; returns wall seconds, peak RSS and stages."""
    schema = data.with_name(data.name.split(".")[0] + ".schema.json")
    out = Path(tempfile.mkdtemp(prefix="safes-bench-", dir=data.parent))
    cmd = ["nice", "/usr/bin/time", "-v", sys.executable, "-m", "safes_framework.cli", "run",
           "--data", str(data), "--schema", str(schema), "--synthesizer", synthesizer,
           "--epsilon", "1", "--delta", "1e-9", "--seed", str(seed), "--backend", backend,
           "--out", str(out / "release"), "--out-format", out_format, *extra]
    load_before = os.getloadavg()[0]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    err = proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"safes run failed ({proc.returncode}):\n{err[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", err)
    assert wall is not None
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    assert rss is not None
    stages = {m[0]: float(m[1]) for m in re.findall(r"\[(\w+)\] finished in ([\d.]+) s", err)}
    return {
        "data": data.name, "synthesizer": synthesizer, "backend": backend,
        "out_format": out_format, "wall_s": round(hours * 3600 + minutes * 60 + seconds, 1),
        "peak_rss_gib": round(int(rss.group(1)) / 2**20, 2), "stages_s": stages,
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
        "command": " ".join(cmd[3:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, nargs="+")
    parser.add_argument("--synthesizer", default="mst")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--out-format", default="parquet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synth-param", action="append", default=[])
    args = parser.parse_args()
    extra = [x for p in args.synth_param for x in ("--synth-param", p)]
    for data in args.data:
        print(json.dumps(run(data, args.synthesizer, args.backend, args.out_format, args.seed,
                             extra)), flush=True)


if __name__ == "__main__":
    main()
