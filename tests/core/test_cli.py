"""Tests of the `safes` command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from unittest.mock import patch

import pandas as pd
import pytest

from safes_framework import Schema
from safes_framework.cli import main
from safes_framework.plugins import DISABLE_ENV, reset_plugin_manager


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
    assert "exists and is not a directory" in capsys.readouterr().err
    monkeypatch.setattr("safes_framework.outputs.os.access", lambda p, mode: False)
    assert main([*base, "--out", str(tmp_path / "new")]) == 2
    assert "is not writable" in capsys.readouterr().err
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


def _code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse
        return int(exc.code or 0)


def test_no_arguments_prints_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: safes") and "run" in err and "sweep" in err


def test_a_repeated_csv_column_is_refused_naming_it(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = inputs
    lines = data.read_text().splitlines()
    data.write_text("\n".join([lines[0] + ",edu"] + [x + ",1" for x in lines[1:]]) + "\n")
    out = tmp_path / "o"
    code = main(["run", "--data", str(data), "--schema", str(spec), "--epsilon", "1",
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "column 'edu' appears twice" in err
    assert not out.exists()


def test_a_word_in_a_number_column_is_the_value_named(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = inputs
    df = pd.read_csv(data)
    df["edu"] = df["edu"].astype(str)
    df.loc[7, "edu"] = "forty"
    df.to_csv(data, index=False)
    code = main(["run", "--data", str(data), "--schema", str(spec), "--epsilon", "1",
                 "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("safes: error: column 'edu': value 'forty' is not a number")


def test_warnings_are_one_safes_warning_line(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = inputs
    pd.read_csv(data).assign(note=1).to_csv(data, index=False)
    code = main(["run", "--data", str(data), "--schema", str(spec), "--epsilon", "1",
                 "--delta", "0.01", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.splitlines()
    assert code == 0
    assert "safes: warning: columns ['note'] are not declared in the schema and are ignored" in err
    assert any(line.startswith("safes: warning: delta=0.01 is not below 1/n") for line in err)
    assert not any("Warning:" in line or ".py:" in line for line in err), err


def test_ctrl_c_in_run_ends_in_one_line_and_writes_nothing(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = inputs
    out = tmp_path / "o"
    with patch("safes_framework.chain.SafesChain._fit", side_effect=KeyboardInterrupt):
        code = main(["run", "--data", str(data), "--schema", str(spec), "--epsilon", "1",
                     "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 130 and len(err.splitlines()) == 1 and err.startswith("safes: interrupted")
    assert not out.exists()


def _commands(out: Path, tmp_path: Path) -> dict[str, list[str]]:
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    return {
        "run": ["run", "--dataset", "compas", "--epsilon", "1", "--quiet", "--out", str(out)],
        "sweep": ["sweep", "--dataset", "compas", "--repeats", "1", "--quiet", "--out", str(out)],
        "report": ["report", str(results), "--out", str(out)],
    }


@pytest.mark.parametrize("command", ["run", "sweep", "report"])
@pytest.mark.parametrize("case", ["a file", "inside a file"])
def test_a_bad_out_is_one_line_and_exit_2_before_any_work(
    command: str, case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory\n")
    out = blocker if case == "a file" else blocker / "sub" / "out"
    with patch("safes_framework.datasets.load", side_effect=AssertionError("work started")):
        code = main(_commands(out, tmp_path)[command])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("safes: error: ") and str(blocker) in err
    assert blocker.read_text() == "not a directory\n"


@pytest.mark.parametrize("command", ["run", "sweep", "report"])
def test_a_read_only_out_is_one_line_and_exit_2(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    real_access = os.access

    def access(path: object, mode: int) -> bool:
        # root may write anywhere: answer as the kernel answers everybody else (and root on a
        # read-only mount)
        if Path(str(path)) == locked and mode & os.W_OK:
            return False
        return real_access(path, mode)  # type: ignore[arg-type]

    try:
        with patch("safes_framework.outputs.os.access", access), patch(
            "safes_framework.datasets.load", side_effect=AssertionError("work started")
        ):
            code = main(_commands(locked / "out", tmp_path)[command])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert "is not writable" in err and str(locked) in err
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def _broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "safes_broken.py").write_text("raise ImportError('no numpy here')\n")
    dist = tmp_path / "safes_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: safes_broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[safes_framework]\nsafes_broken = safes_broken\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    reset_plugin_manager()


def test_a_broken_plugin_is_listed_and_the_rest_works(
    inputs: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "site").mkdir()
    _broken_plugin(tmp_path / "site", monkeypatch)
    try:
        assert main(["plugins"]) == 0
        captured = capsys.readouterr()
        broken = [line for line in captured.out.splitlines() if line.startswith("broken")]
        assert len(broken) == 1 and "safes_broken" in broken[0] and "no numpy here" in broken[0]
        assert "mst" in captured.out
        assert captured.err.startswith("safes: warning: plugin 'safes_broken'")
        data, spec = inputs
        code = main(["run", "--data", str(data), "--schema", str(spec), "--epsilon", "1",
                     "--out", str(tmp_path / "o"), "--quiet"])
        assert code == 0 and (tmp_path / "o" / "release.csv").exists()
        capsys.readouterr()
        # the documented switch: skipped, listed as disabled, no warning
        assert main(["--disable-plugin", "safes_broken", "plugins", "--json"]) == 0
        captured = capsys.readouterr()
        rows = json.loads(captured.out)
        assert {"kind": "disabled", "name": "safes_broken"}.items() <= rows[-1].items()
        assert os.environ[DISABLE_ENV] == "safes_broken" and captured.err == ""
    finally:
        reset_plugin_manager()


@pytest.mark.slow
def test_sigint_during_run_ends_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "o"
    proc = subprocess.Popen(
        [sys.executable, "-m", "safes_framework.cli", "run", "--dataset", "adult-full",
         "--synthesizer", "aim", "--epsilon", "1", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # wait until the synthesizer is at work
        lines.append(line)
        if line.startswith("[synthesizer] ") and "started" not in line:
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(lines) + rest
    assert "Traceback" not in rest
    assert rest.strip().splitlines()[-1].startswith("safes: interrupted; a release is written")
    assert not out.exists() or list(out.iterdir()) == []


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
