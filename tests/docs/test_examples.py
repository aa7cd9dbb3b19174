"""Every fenced shell and Python block of README.md and docs/*.md runs, in order, per file.

Each document's blocks run one after the other in a fresh temporary directory: a ```bash or
```sh block with `bash -e -o pipefail`, a ```python block as a script saved there
(`python doc_block_NN.py`, so `if __name__ == "__main__":` matters as it does for a reader).
An HTML comment right before a block changes what CI does with it (docs/plugins.md, "Docs
that run", documents them):

- `<!-- ci: skip REASON -->`: not run (a reason is required; keep these rare);
- `<!-- ci: replace "OLD" "NEW" -->`: run with OLD replaced by NEW (smaller parameters); OLD
  must occur in the block, so a stale marker fails;
- `<!-- ci: file PATH -->`: not run, written to PATH (a config file, a plugin module);
- `<!-- ci: pytest PATH -->`: written to PATH and run with pytest (a test file);
- `<!-- ci: entry-point NAME = MODULE -->`: before the block, a distribution declaring that
  `safes_framework` entry point is installed into the temporary directory.

A fence without a language whose first line is a command fails the static check: label it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"bash": "shell", "sh": "shell", "shell": "shell", "python": "python", "py": "python"}
#: First words of a line that make an unlabelled fence look like a command.
COMMAND_WORDS = ("safes", "python", "python3", "pip", "dask", "cd", "export")
MARKERS = ("skip", "replace", "file", "pytest", "entry-point")
BLOCK_TIMEOUT = 1200

_FENCE = re.compile(r"^\s*```(?P<info>[\w+-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*ci:\s*(?P<kind>[\w-]+)\s*(?P<args>.*?)\s*-->\s*$")


@dataclass
class Block:
    """One fenced block of a document, with the CI markers right before it."""

    doc: Path
    line: int
    info: str
    text: str
    markers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def language(self) -> str | None:
        return LANGUAGES.get(self.info.lower())

    @property
    def where(self) -> str:
        doc = self.doc.relative_to(ROOT) if self.doc.is_relative_to(ROOT) else self.doc
        return f"{doc}:{self.line}"

    def marker(self, kind: str) -> list[str]:
        return [args for k, args in self.markers if k == kind]


def parse(text: str, doc: Path) -> list[Block]:
    """The fenced blocks of a Markdown text, each with the `<!-- ci: ... -->` lines before it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        body = textwrap.dedent("\n".join(lines[start + 1 : j])) + "\n"
        markers = []
        k = start - 1
        while k >= 0 and (mk := _MARKER.match(lines[k])):
            markers.insert(0, (mk["kind"], mk["args"]))
            k -= 1
        blocks.append(Block(doc, start + 1, m["info"], body, markers))
        i = j + 1
    return blocks


def problems(block: Block) -> list[str]:
    """What is wrong with a block's markers or labelling (empty when nothing)."""
    out = []
    for kind, args in block.markers:
        if kind not in MARKERS:
            out.append(f"unknown marker ci: {kind} (known: {', '.join(MARKERS)})")
        elif kind == "skip" and not args:
            out.append("ci: skip needs a reason")
        elif kind in ("file", "pytest") and not args:
            out.append(f"ci: {kind} needs a path")
        elif kind == "replace":
            try:
                parts = shlex.split(args)
            except ValueError as exc:
                parts = [str(exc)]
            if len(parts) != 2:
                out.append(f'ci: replace needs "OLD" "NEW", got {args!r}')
            elif parts[0] not in block.text:
                out.append(f"ci: replace: {parts[0]!r} does not occur in the block")
        elif kind == "entry-point" and not re.fullmatch(r"[\w.-]+\s*=\s*[\w.:]+", args):
            out.append(f"ci: entry-point needs NAME = MODULE, got {args!r}")
    if block.markers and block.language is None and not block.marker("file"):
        out.append(f"ci markers before a ```{block.info} block, which CI does not run")
    if not block.info:
        first = next((x.split()[0] for x in block.text.splitlines() if x.strip()), "")
        if first in COMMAND_WORDS:
            out.append("a command block without a language: label it ```bash (or ```text)")
    return [f"{block.where}: {p}" for p in out]


def _documents_with_runs() -> list[Path]:
    return [d for d in DOCUMENTS if any(_runs(b) for b in parse(d.read_text(), d))]


def _runs(block: Block) -> bool:
    return block.language is not None and not block.marker("skip")


# -- static checks (fast) -------------------------------------------------------------------------


def test_every_marker_is_known_and_every_command_block_is_labelled() -> None:
    found = [p for d in DOCUMENTS for b in parse(d.read_text(), d) for p in problems(b)]
    assert found == []


def test_the_parser_reads_markers_indented_fences_and_languages(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    text = textwrap.dedent(
        """
        Intro.

        <!-- ci: skip needs a cluster -->
        ```bash
        dask scheduler
        ```

        - a list item:

          ```toml
          [a]
          b = 1
          ```

        <!-- ci: replace "--repeats 35" "--repeats 1" -->
        <!-- ci: entry-point my_synth = my_package.plugin -->
        ```python
        print("--repeats 35")
        ```

        ```
        safes run --dataset adult
        ```
        """
    )
    blocks = parse(text, doc)
    assert [(b.info, b.language, b.line) for b in blocks] == [
        ("bash", "shell", 5), ("toml", None, 11), ("python", "python", 18), ("", None, 22)
    ]
    assert blocks[0].marker("skip") == ["needs a cluster"] and not _runs(blocks[0])
    assert blocks[1].text == "[a]\nb = 1\n"
    assert blocks[2].markers == [
        ("replace", '"--repeats 35" "--repeats 1"'),
        ("entry-point", "my_synth = my_package.plugin"),
    ]
    assert problems(blocks[2]) == []
    assert [p.split(": ", 1)[1] for p in problems(blocks[3])] == [
        "a command block without a language: label it ```bash (or ```text)"
    ]
    bad = Block(doc, 1, "bash", "safes run\n", [("replace", '"--nope" "x"'), ("skip", "")])
    assert len(problems(bad)) == 2


def test_the_runner_sees_a_block_fail(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text('```python\nraise SystemExit("broken example")\n```\n')
    with pytest.raises(AssertionError, match="broken example"):
        run_document(doc, tmp_path / "work")


# -- running them -------------------------------------------------------------------------------


def _install_entry_point(work: Path, spec: str) -> None:
    name, value = (x.strip() for x in spec.split("=", 1))
    dist = work / f"doc_example_{name}-0.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: doc-example-{name}\nVersion: 0.0\n"
    )
    (dist / "entry_points.txt").write_text(f"[safes_framework]\n{name} = {value}\n")


_EXIT_CODE = re.compile(r"^(?P<cmd>.*\S)\s+# exit code (?P<code>\d+)\s*$")


def _expect_exit_codes(script: str) -> str:
    """A command line ending in `# exit code N` (a documented failure) must exit with N."""
    lines = []
    for line in script.splitlines():
        m = _EXIT_CODE.match(line)
        if m is None:
            lines.append(line)
            continue
        code = m.group("code")
        lines.append(
            f"if {m.group('cmd')}; then echo 'expected exit code {code}, got 0' >&2; exit 1; "
            f"else rc=$?; [ \"$rc\" -eq {code} ] || "
            f"{{ echo \"expected exit code {code}, got $rc\" >&2; exit 1; }}; fi"
        )
    return "\n".join(lines) + "\n"


def run_document(doc: Path, work: Path) -> None:
    """Run the blocks of `doc` in order in `work`; AssertionError at the first that fails."""
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(
            [str(work), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "MPLBACKEND": "Agg",
    }
    for n, block in enumerate(parse(doc.read_text(), doc)):
        if block.language is None and not block.marker("file"):
            continue
        if block.marker("skip"):
            continue
        text = block.text
        for args in block.marker("replace"):
            old, new = shlex.split(args)
            text = text.replace(old, new)
        for spec in block.marker("entry-point"):
            _install_entry_point(work, spec)
        if block.marker("file"):
            target = work / block.marker("file")[0]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            continue
        if block.marker("pytest"):
            target = work / block.marker("pytest")[0]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(target)]
        elif block.language == "python":
            script = work / f"doc_block_{n:02d}.py"
            script.write_text(text)
            argv = [sys.executable, script.name]
        else:
            script = work / f".doc_block_{n:02d}.sh"
            script.write_text(_expect_exit_codes(text))
            argv = ["bash", "-e", "-o", "pipefail", script.name]
        try:
            proc = subprocess.run(
                argv, cwd=work, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{block.where}: did not finish in {BLOCK_TIMEOUT} s") from None
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
            raise AssertionError(
                f"{block.where}: exit {proc.returncode}\n--- block ---\n{text}--- output ---\n"
                f"{tail}"
            )


@pytest.mark.slow
@pytest.mark.parametrize(
    "doc", _documents_with_runs(), ids=lambda d: str(d.relative_to(ROOT))
)
def test_the_documented_examples_run(doc: Path, tmp_path: Path) -> None:
    # The docs are written from the repository's root: they refer to the example table, the
    # sweep configs and the scripts by their paths there. A copy of docs/ (commands may write
    # into it) and links to the scripts stand in for it.
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    for folder in ("benchmarks", "scripts"):
        (tmp_path / folder).symlink_to(ROOT / folder, target_is_directory=True)
    run_document(doc, tmp_path)
