"""Execute every tutorial notebook on CPU with nbclient; fail when one errors or takes more than 60 s."""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

LIMIT_SECONDS = 60

failures = []
notebooks = sorted(Path(sys.argv[1]).glob("*.ipynb"))
if not notebooks:
    sys.exit(f"no notebooks found in {sys.argv[1]}")
for path in notebooks:
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=LIMIT_SECONDS * 2, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    print(f"{path.name}: executed in {seconds:.1f} s")
    if seconds > LIMIT_SECONDS:
        failures.append(f"{path.name} took {seconds:.1f} s (limit {LIMIT_SECONDS} s)")
if failures:
    sys.exit("\n".join(failures))
