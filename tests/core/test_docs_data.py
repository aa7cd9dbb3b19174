"""docs/data.md runs as written: its commands and its Python, on the example table it ships."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest

from safes_framework.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "data.md"
EXAMPLES = ROOT / "docs" / "examples"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_example_table_is_what_its_script_writes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_example_table", ROOT / "scripts" / "make_example_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = pd.read_csv(EXAMPLES / "loans.csv")
    pd.testing.assert_frame_equal(shipped, module.make_table(), check_dtype=False)
    assert len(shipped) == 2000 and shipped["group"].nunique() == 3


@pytest.mark.slow
def test_every_command_and_python_block_of_data_md_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "docs" / "examples")
    monkeypatch.chdir(tmp_path)
    commands = [line for block in _blocks("bash") for line in block.splitlines() if line]
    assert len(commands) >= 6
    for line in commands:
        expected = re.search(r"# exit code (\d+)", line)
        argv = shlex.split(line, comments=True)
        assert argv[0] == "safes", line
        code = main(argv[1:])
        captured = capsys.readouterr()
        assert code == (int(expected.group(1)) if expected else 0), (line, captured.err)
    for block in _blocks("python"):
        exec(compile(block, str(DOC), "exec"), {"__name__": "docs_data"})  # noqa: S102
    assert sorted(p.name for p in (tmp_path / "loans-fair").iterdir()) == [
        "privacy.json", "release.csv", "run.json"
    ]
    # The ledger entry the page shows is the run's (it depends on the budget only).
    shown = json.loads(_blocks("json")[0])
    first = json.loads((tmp_path / "loans-release" / "privacy.json").read_text())["ledger"][0]
    assert first == shown
    dp = json.loads((tmp_path / "loans-dp" / "run.json").read_text())
    assert dp["fairness"] is None and dp["fairness_failure"]["error"] == "InfeasibleError"
    release = pd.read_csv(tmp_path / "loans-release" / "release.csv")
    assert release["age"].dtype == "int64" and release["age"].nunique() > 6


@pytest.mark.parametrize("command", ["fair", "schema draft", "schema check"])
def test_every_option_of_the_own_table_commands_is_documented(command: str) -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    parser = sub.choices[command.split()[0]]
    if " " in command:
        inner = next(a for a in parser._actions if a.dest == "schema_command")
        parser = inner.choices[command.split()[1]]
    text = DOC.read_text(encoding="utf-8")
    for action in parser._actions:
        for opt in action.option_strings:
            if opt.startswith("--") and opt not in ("--help", "--overwrite"):
                assert opt in text, f"safes {command} {opt} missing from docs/data.md"
    for opt in ("--dry-run", "--bin-share", "--schema", "--data"):
        assert opt in text
