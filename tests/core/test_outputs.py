"""Output directories: checks before any work, staged writes, leftovers of killed writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest.mock import patch

import pytest

from safes_framework import outputs
from safes_framework.errors import ConfigError
from safes_framework.outputs import (
    PARTIAL_PREFIX,
    check_output_dir,
    clean_stale,
    staged_directory,
    staged_file,
)


def test_a_new_directory_passes_and_nothing_is_created(tmp_path: Path) -> None:
    assert check_output_dir(tmp_path / "a" / "b", overwrite=False) == tmp_path / "a" / "b"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("make", "overwrite", "message"),
    [
        (lambda p: p.write_text("x"), True, "exists and is not a directory"),
        (lambda p: (p.mkdir(), (p / "f").write_text("x")), False, "is not empty"),
    ],
)
def test_an_existing_path_is_checked(
    tmp_path: Path, make: object, overwrite: bool, message: str
) -> None:
    out = tmp_path / "out"
    make(out)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=message) as info:
        check_output_dir(out, overwrite=overwrite)
    assert repr(str(out)) in str(info.value)


def test_a_non_empty_directory_passes_with_overwrite(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    check_output_dir(tmp_path, overwrite=True)


def test_a_path_below_a_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        check_output_dir(tmp_path / "file" / "a" / "out", overwrite=False)


def test_a_read_only_ancestor_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    real_access = os.access

    def access(path: object, mode: int) -> bool:  # what the kernel says to non-root users
        return False if Path(str(path)) == locked else real_access(path, mode)  # type: ignore[arg-type]

    with patch("safes_framework.outputs.os.access", access):
        with pytest.raises(ConfigError, match="not writable.*read-only"):
            check_output_dir(locked / "sub" / "out", overwrite=False)
        with pytest.raises(ConfigError, match="not writable .it is read-only"):
            check_output_dir(locked, overwrite=True)
    locked.chmod(0o755)


def test_staged_files_appear_together_and_foreign_files_stay(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "a.csv").write_text("old")
    with staged_directory(out, overwrite=True) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(PARTIAL_PREFIX)
        (tmp / "a.csv").write_text("new")
        (tmp / "b.json").write_text("{}")
        assert (out / "a.csv").read_text() == "old"
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "notes.txt": "mine",
        "a.csv": "new",
        "b.json": "{}",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_error_while_staging_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_directory(out) as tmp:
        (tmp / "a.csv").write_text("half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), staged_file(tmp_path / "e.json") as f:
        f.write_text("{")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_staged_file_replaces_its_target_only_with_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "e.json"
    target.write_text("old")
    with pytest.raises(ConfigError, match="exists"), staged_file(target):
        pass
    with staged_file(target, overwrite=True) as f:
        f.write_text("new")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_dead_writers_leftovers_on_this_host_are_cleaned(tmp_path: Path) -> None:
    host, dead = outputs._host(), _dead_pid()
    names = {
        "dead_dir": f"{PARTIAL_PREFIX}{host}-{dead}-abc",
        "dead_file": f"{PARTIAL_PREFIX}{host}-{dead}-xyz.json",
        "live": f"{PARTIAL_PREFIX}{host}-{os.getpid()}-abc",
        "other_host": f"{PARTIAL_PREFIX}elsewhere-{dead}-abc",
        "not_ours": ".safes-abc",
    }
    (tmp_path / names["dead_dir"]).mkdir()
    (tmp_path / names["dead_dir"] / "release.csv").write_text("a,b\n1,")
    (tmp_path / names["dead_file"]).write_text("{")
    for key in ("live", "other_host", "not_ours"):
        (tmp_path / names[key]).mkdir()
    removed = clean_stale(tmp_path)
    assert sorted(p.name for p in removed) == sorted([names["dead_dir"], names["dead_file"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [names["live"], names["other_host"], names["not_ours"]]
    )


KILLED_SAVE = textwrap.dedent(
    """
    import sys, time
    import pandas as pd
    import safes_framework
    from safes_framework import SafesChain
    from safes_framework.testing import toy_schema, toy_table

    synth = safes_framework.synthesizer("mst", epsilon=1.0, delta=1e-9)
    release = SafesChain(synth, seed=0).run(toy_table(500), toy_schema())

    def stuck_to_csv(self, target, **kwargs):  # half a table written, then the process hangs
        if hasattr(target, "write"):
            target.write("sex,race,edu,income\\n0,1,")
            target.flush()
        else:
            with open(target, "w") as fh:
                fh.write("sex,race,edu,income\\n0,1,")
        print("writing", flush=True)
        time.sleep(600)

    pd.DataFrame.to_csv = stuck_to_csv
    release.save(sys.argv[1])
    """
)


@pytest.mark.slow
def test_a_save_killed_outright_is_cleaned_by_the_next_save(tmp_path: Path) -> None:
    out = tmp_path / "release"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVE, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    [left] = list(tmp_path.iterdir())  # the debris of the killed save, nothing at --out
    assert left.name.startswith(PARTIAL_PREFIX) and (left / "release.csv").exists()
    with staged_directory(tmp_path / "other") as tmp:  # any later save beside it
        (tmp / "release.csv").write_text("a\n1\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]
