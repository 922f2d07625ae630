"""Print one of the two commands README.md opens with: ``install`` (install + demo) or ``test``.

They are the first two lines of the first ``bash`` code block of README.md; CI runs the test command from here so
the README and CI cannot drift apart.
"""

import re
import sys
from pathlib import Path

block = re.search(r"```bash\n(.*?)```", Path(__file__).resolve().parents[1].joinpath("README.md").read_text(), re.S)
if block is None:
    sys.exit("README.md has no ```bash block")
commands = [line for line in block.group(1).splitlines() if line.strip()]
if len(commands) != 2:
    sys.exit(f"README.md's first bash block must hold exactly two commands, found {len(commands)}")
print(commands[{"install": 0, "test": 1}[sys.argv[1]]])
