"""Tests of the `safes` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from unittest.mock import patch

import pandas as pd
import pytest

from safes_framework import Schema
from safes_framework.cli import main


@pytest.fixture
def inputs(tmp_path: Path, table: pd.DataFrame, schema: Schema) -> tuple[Path, Path]:
    data, spec = tmp_path / "data.csv", tmp_path / "schema.json"
    table.to_csv(data, index=False)
    spec.write_text(schema.to_json())
    return data, spec


def test_run_writes_release_privacy_and_run_json(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = inputs
    out, evaluation = tmp_path / "out", tmp_path / "eval.json"
    code = main(
        [
            "run", "--data", str(data), "--schema", str(spec), "--synthesizer", "mst",
            "--epsilon", "1", "--delta", "1e-9", "--out", str(out),
            "--metric", "mean_outcome_difference", "--evaluation", str(evaluation),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "[synthesizer] started" in captured.err and "4/4 done" in captured.err
    assert "(1, 1e-09)-DP" in captured.out and "NOT private" in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["privacy.json", "release.csv", "run.json"]
    release = pd.read_csv(out / "release.csv")
    assert abs(len(release) - 2000) < 200  # a DP estimate of the size, not the size
    privacy = json.loads((out / "privacy.json").read_text())
    assert privacy["epsilon"] <= 1 and privacy["delta"] == 1e-9
    assert privacy["noise"]["source"] == "secure"
    run = json.loads((out / "run.json").read_text())
    assert run["synthesizer"]["name"] == "mst" and run["rows"] == len(release)
    assert "timings" not in run and "seed" not in run and "metrics" not in run
    assert json.loads(evaluation.read_text())["warning"].startswith("NOT differentially")


def test_run_with_a_seed_warns_and_records_no_seed(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = inputs
    out = tmp_path / "out"
    argv = ["run", "--data", str(data), "--schema", str(spec), "--epsilon", "1",
            "--seed", "48151623", "--rows", "100", "--quiet", "--out", str(out)]
    with patch.object(sys, "argv", ["safes", *argv]):
        code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "safes: warning: --seed makes the DP noise reproducible" in captured.err
    for f in out.iterdir():
        assert "48151623" not in f.read_text(), f.name
    run = json.loads((out / "run.json").read_text())
    assert "<secret>" in run["command"] and run["seeded"] is True
    privacy = json.loads((out / "privacy.json").read_text())
    assert "for experiments" in privacy["noise"]["measurements"]


def test_run_refuses_metrics_without_an_evaluation_file_outside_the_release(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = inputs
    base = ["run", "--data", str(data), "--schema", str(spec), "--epsilon", "1",
            "--out", str(tmp_path / "out"), "--metric", "mean_outcome_difference"]
    assert main(base) == 2
    assert "--metric needs --evaluation" in capsys.readouterr().err
    assert main([*base, "--evaluation", str(tmp_path / "out" / "eval.json")]) == 2
    assert "inside the release directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--epsilon", "1", "--out", "x"], "give --dataset NAME"),
        (["run", "--dataset", "nope", "--epsilon", "1", "--out", "x"], "nope"),
        (
            [
                "run",
                "--synthesizer",
                "nope",
                "--epsilon",
                "1",
                "--out",
                "x",
                "--data",
                "D",
                "--schema",
                "S",
            ],
            "cannot read input",
        ),
        (["run", "--epsilon", "abc", "--out", "x"], "invalid float value"),
        (["bogus"], "invalid choice"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err


def test_unknown_synthesizer_lists_installed(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = inputs
    code = main(
        [
            "run",
            "--data",
            str(data),
            "--schema",
            str(spec),
            "--synthesizer",
            "nope",
            "--epsilon",
            "1",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "installed synthesizers: " in err and "mst" in err
    assert not (tmp_path / "o").exists()


def test_out_of_domain_data_names_column_and_writes_nothing(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = inputs
    df = pd.read_csv(data)
    df.loc[3, "edu"] = 17
    df.to_csv(data, index=False)
    code = main(
        [
            "run",
            "--data",
            str(data),
            "--schema",
            str(spec),
            "--epsilon",
            "1",
            "--out",
            str(tmp_path / "o"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "'edu'" in err and "17" in err
    assert not (tmp_path / "o").exists()


def test_plugins_lists_kind_and_origin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    mst = next(r for r in rows if r["name"] == "mst")
    assert mst == {
        **mst,
        "kind": "synthesizer",
        "origin": "built-in",
        "plugin": "safes_plugins.synthesizers.mst",
    }


def test_console_script_is_installed() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "safes_framework.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("safes ")


def test_run_reads_parquet_in_chunks_and_writes_a_parquet_release(
    tmp_path: Path, table: pd.DataFrame, schema: Schema, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec, out = tmp_path / "data.parquet", tmp_path / "schema.json", tmp_path / "out"
    table.to_parquet(data)
    spec.write_text(schema.to_json())
    code = main(
        [
            "run", "--data", str(data), "--schema", str(spec), "--synthesizer", "mst",
            "--epsilon", "1", "--out", str(out), "--out-format", "parquet",
            "--chunk-rows", "300", "--backend", "duckdb", "--quiet",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(p.name for p in out.iterdir()) == ["privacy.json", "release.parquet", "run.json"]
    schema.validate(pd.read_parquet(out / "release.parquet"))
    assert "release.parquet" in captured.out


def test_run_names_the_bad_value_of_a_late_chunk_and_writes_nothing(
    tmp_path: Path, table: pd.DataFrame, schema: Schema, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec, out = tmp_path / "data.csv", tmp_path / "schema.json", tmp_path / "out"
    bad = table.copy()
    bad.loc[len(bad) - 2, "edu"] = 9
    bad.to_csv(data, index=False)
    spec.write_text(schema.to_json())
    code = main(
        [
            "run", "--data", str(data), "--schema", str(spec), "--epsilon", "1",
            "--out", str(out), "--chunk-rows", "128",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "column 'edu': value 9" in err and f"row {len(bad) - 1:,}" in err
    assert not out.exists()
