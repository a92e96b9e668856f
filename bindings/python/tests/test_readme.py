"""The README's Python quick start runs as written: the first ```python block of its
"## Python" section, in a fresh process and an empty folder."""

import re
import subprocess
import sys

from conftest import REPO, requires_encoder


def quick_start():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Python\n(.*?)(?=^## )", readme, re.S | re.M)
    assert section, "README.md has no '## Python' section"
    block = re.search(r"^```python\n(.*?)^```", section.group(1), re.S | re.M)
    assert block, "the Python section has no ```python block"
    return block.group(1)


def test_quick_start_fits_one_screen():
    assert len(quick_start().splitlines()) <= 25


@requires_encoder
def test_quick_start_runs(tmp_path):
    script = tmp_path / "quick_start.py"
    script.write_text(quick_start(), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), "the quick start printed nothing"
