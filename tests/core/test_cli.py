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
            "expected a .toml or .json file",
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


# -- your own table: schema files, checks before any spend, paid-for data, safes fair ----------


def _forbid_reading_data(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data was read")

    monkeypatch.setattr("safes_framework.io.read_table", refuse)
    monkeypatch.setattr(pd, "read_csv", refuse)


def test_schema_draft_writes_a_marked_draft_and_says_it_is_not_private(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = inputs
    out = tmp_path / "draft.toml"
    argv = ["schema", "draft", str(data), "--protected", "sex,race", "--label", "income",
            "--favorable", "1", "--privileged", "sex=1", "--privileged", "race=1",
            "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "read from the data and is NOT private" in captured.err
    assert "public knowledge" in captured.err
    text = out.read_text()
    assert "draft = true" in text and text.startswith("# DRAFT")
    with pytest.warns(UserWarning, match="is a draft"):
        schema = Schema.from_file(out)
    assert schema.protected == ("sex", "race") and schema.favorable == 1
    assert schema.privileged == {"sex": (1,), "race": (1,)}
    assert main(argv) == 2 and "exists" in capsys.readouterr().err
    # A draft is refused by `safes run` before anything else.
    code = main(["run", "--data", str(data), "--schema", str(out), "--epsilon", "1",
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "is a draft" in capsys.readouterr().err


def test_schema_check_accepts_a_fitting_table_and_names_a_bad_value(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = inputs
    toml = tmp_path / "schema.toml"
    toml.write_text(Schema.from_file(spec).to_toml())
    assert main(["schema", "check", str(data), str(toml)]) == 0
    assert capsys.readouterr().out.startswith("ok: every row")
    df = pd.read_csv(data)
    df.loc[4, "edu"] = 12
    df.to_csv(data, index=False)
    assert main(["schema", "check", str(data), str(toml)]) == 2
    err = capsys.readouterr().err
    assert "'edu'" in err and "12" in err


def test_run_reads_parquet_with_a_toml_schema(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = inputs
    parquet, toml = tmp_path / "data.parquet", tmp_path / "schema.toml"
    pd.read_csv(data).to_parquet(parquet)
    toml.write_text(Schema.from_file(spec).to_toml())
    out = tmp_path / "out"
    code = main(["run", "--data", str(parquet), "--schema", str(toml), "--epsilon", "1",
                 "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["input"]["data"] == str(parquet)


def test_dry_run_prints_the_plan_and_reads_no_data(
    inputs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data, spec = inputs
    _forbid_reading_data(monkeypatch)
    code = main(["run", "--data", str(data), "--schema", str(spec), "--epsilon", "1",
                 "--synthesizer", "aim", "--fairness", "tot", "--eta", "0.1",
                 "--fairness-param", "distortion=generic", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "plan (no data read)" in out and "zCDP rho" in out
    assert "workload_model_mb" in out  # AIM's model-size pre-flight
    assert "moves:" in out and "groups: 4" in out  # TOT's LP size


def test_an_unwritable_out_fails_before_any_data_is_read(
    inputs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data, spec = inputs
    _forbid_reading_data(monkeypatch)
    (tmp_path / "file").write_text("x")
    base = ["run", "--data", str(data), "--schema", str(spec), "--epsilon", "1"]
    assert main([*base, "--out", str(tmp_path / "file")]) == 2
    assert "exists as a file" in capsys.readouterr().err
    monkeypatch.setattr("safes_framework.outputs.os.access", lambda p, mode: False)
    assert main([*base, "--out", str(tmp_path / "new")]) == 2
    assert "not writable (read-only)" in capsys.readouterr().err
    monkeypatch.undo()
    _forbid_reading_data(monkeypatch)
    assert main([*base, "--metric", "model_utility", "--evaluation",
                 str(tmp_path / "e.json"), "--out", str(tmp_path / "o")]) == 2
    assert "reads the real test table" in capsys.readouterr().err
    assert main([*base, "--fairness", "tot", "--fairness-param", "distortion=nope.toml",
                 "--out", str(tmp_path / "o")]) == 2
    assert "cannot read distortion file 'nope.toml'" in capsys.readouterr().err


def test_infeasible_fairness_keeps_the_dp_release_and_safes_fair_reapplies_it(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = inputs
    out = tmp_path / "dp"
    # dlist all 0 forbids every change: exact parity (eta 0) is then out of reach.
    code = main(["run", "--data", str(data), "--schema", str(spec), "--epsilon", "1",
                 "--fairness", "tot", "--eta", "0", "--fairness-param", "distortion=generic",
                 "--fairness-param", "dlist=[0.0, 0.0, 0.0]", "--quiet", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert "WITHOUT fairness" in captured.out
    assert f"safes fair {out} --fairness tot --eta ETA" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["privacy.json", "release.csv", "run.json"]
    run = json.loads((out / "run.json").read_text())
    assert run["fairness"] is None and run["fairness_failure"]["error"] == "InfeasibleError"

    data.unlink()  # the original data is not needed any more: nothing reads it
    fair = tmp_path / "fair"
    with patch("safes_framework.chain.SafesChain.run", side_effect=AssertionError("ran")):
        code = main(["fair", str(out), "--fairness", "tot", "--eta", "0.3",
                     "--fairness-param", "distortion=generic", "--out", str(fair)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "no data read, no budget spent" in captured.out
    assert (fair / "privacy.json").read_text() == (out / "privacy.json").read_text()
    made = json.loads((fair / "run.json").read_text())
    assert made["made_from"] == {"run_id": run["run_id"], "fairness": None}
    assert made["fairness"]["params"]["eta"] == 0.3 and set(made["seeds"]) == {"fairness"}
    assert made["input"] == {"release": str(out)}
    assert main(["fair", str(out), "--fairness", "tot", "--out", str(out), "--overwrite"]) == 2
    assert "must differ" in capsys.readouterr().err
    assert main(["fair", str(tmp_path), "--fairness", "tot", "--out", str(tmp_path / "x")]) == 2
    assert "not a release directory" in capsys.readouterr().err
