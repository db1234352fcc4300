# Runs each test file in its own pytest process, to keep memory use flat.
import pathlib
import subprocess
import sys


here = pathlib.Path(__file__).resolve().parent
running_code = 0
for file in sorted(here.iterdir()):
    if file.is_file() and file.name.startswith("test"):
        out = subprocess.run(f"pytest {file}", shell=True).returncode
        running_code = max(running_code, out)
sys.exit(running_code)
