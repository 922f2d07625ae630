"""Execute every tutorial notebook on CPU with nbclient; fail when one errors or a cell hangs (no cell may take more
than 10 minutes). Each notebook's time is printed; a time is never a failure (a loaded machine is slower).

``python .ci/execute_notebooks.py tutorials --out docs/_generated/tutorials`` also writes each executed notebook,
with its outputs, to the ``--out`` directory: the docs render those copies (with execution off), so CI runs every
notebook once per run. Each copy is written to a temporary name and renamed, so a failed run leaves none half-written.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CELL_TIMEOUT_SECONDS = 600

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("directory", type=Path, help="the directory of the notebooks (*.ipynb)")
parser.add_argument("--out", type=Path, default=None, help="write the executed notebooks here")
args = parser.parse_args()

notebooks = sorted(args.directory.glob("*.ipynb"))
if not notebooks:
    sys.exit(f"no notebooks found in {args.directory}")
if args.out is not None:
    args.out.mkdir(parents=True, exist_ok=True)
for path in notebooks:
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=CELL_TIMEOUT_SECONDS, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    print(f"{path.name}: executed in {seconds:.1f} s")
    if args.out is not None:
        handle, temporary = tempfile.mkstemp(dir=args.out, prefix=f".{path.name}.", suffix=".part")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            nbformat.write(notebook, stream)
        os.replace(temporary, args.out / path.name)
