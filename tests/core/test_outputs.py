"""Tests of check_output_dir: every way an output directory can be unwritable, creating nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from safes_framework import outputs
from safes_framework.errors import ConfigError
from safes_framework.outputs import check_output_dir


def test_a_new_or_empty_directory_passes_and_nothing_is_created(tmp_path: Path) -> None:
    assert check_output_dir(tmp_path / "a" / "b", overwrite=False) == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", overwrite=False)


def test_a_file_in_the_way_is_named(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"'.*f' exists as a file"):
        check_output_dir(tmp_path / "f", overwrite=True)
    with pytest.raises(ConfigError, match=r"'.*f' is a file"):
        check_output_dir(tmp_path / "f" / "out", overwrite=True)


def test_a_non_empty_directory_needs_overwrite(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "release.csv").write_text("x")
    with pytest.raises(ConfigError, match="is not empty"):
        check_output_dir(tmp_path / "out", overwrite=False)
    check_output_dir(tmp_path / "out", overwrite=True)


def test_read_only_places_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(
        outputs.os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode)
    )
    with pytest.raises(ConfigError, match=r"'.*ro' is not writable \(read-only\)"):
        check_output_dir(ro / "new" / "out", overwrite=False)
    with pytest.raises(ConfigError, match="is not writable"):
        check_output_dir(ro, overwrite=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_a_directory_without_write_permission_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            check_output_dir(ro / "out", overwrite=False)
    finally:
        ro.chmod(0o755)
