# The documentation site (mkdocs.yml, docs/): it builds with `--strict` and no
# warning, every public name has an API entry, every example has its recorded output,
# and every Python code block on the hand-written pages runs.
import inspect
import os
import pathlib
import re
import subprocess
import sys

import lineax_kernels as lxk
import pytest


_ROOT = pathlib.Path(__file__).resolve().parent.parent
_DOCS = _ROOT / "docs"
_FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # mkdocs-material prints a banner about MkDocs 2 otherwise.
    env["NO_MKDOCS_2_WARNING"] = "1"
    return env


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> pathlib.Path:
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", site_dir],
        cwd=_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert not warnings, log
    return site_dir


def test_strict_build(site):
    assert (site / "index.html").exists()
    benchmarks = (site / "benchmarks" / "index.html").read_text()
    assert "<!-- lxk: benchmark tables -->" not in benchmarks
    assert benchmarks.count("<tr>") > 20


def test_every_public_name_has_an_api_entry(site):
    public = {
        name
        for name in dir(lxk)
        if not name.startswith("_") and not inspect.ismodule(getattr(lxk, name))
    }
    assert set(lxk.__all__) == public
    directives = set()
    for page in (_DOCS / "api").glob("*.md"):
        directives |= set(
            re.findall(r"^::: lineax_kernels\.(\w+)$", page.read_text(), re.M)
        )
    assert set(lxk.__all__) <= directives
    html = "".join(p.read_text() for p in (site / "api").rglob("index.html"))
    for name in lxk.__all__:
        assert f'id="lineax_kernels.{name}"' in html, name


def test_every_example_has_a_page_and_output(site):
    for script in sorted((_ROOT / "examples").glob("*.py")):
        assert (_DOCS / "examples" / f"{script.stem}.txt").exists(), (
            f"run `python docs/_hooks/record_examples.py {script.stem}`"
        )
        page = (site / "examples" / script.stem / "index.html").read_text()
        assert "No output recorded yet" not in page


_PAGES = sorted(
    p.relative_to(_DOCS).as_posix()
    for p in _DOCS.rglob("*.md")
    if _FENCE.search(p.read_text())
)


@pytest.mark.parametrize("page", _PAGES)
def test_code_blocks_run(page, tmp_path):
    # The blocks of one page run in order, as one script, in a fresh interpreter
    # (without the test suite's JAX settings), as a reader would run them.
    blocks = _FENCE.findall((_DOCS / page).read_text())
    script = "\n\n".join(blocks)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{page}:\n{script}\n\n{result.stderr}"
