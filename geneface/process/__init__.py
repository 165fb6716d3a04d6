"""The processing commands (thin Hydra entries): `python -m geneface.process` (a speaker video) and
`python -m geneface.process.corpus` (a clip corpus). The work is in geneface.processing.

Their configs live in configs/process/ (there `speaker=` names a new dataset, not a config group), so
they find configs/paths and configs/speaker through GENEFACE_CONFIG_DIR, set here to this checkout's
configs/ unless the user set it: the commands then work from any directory.
"""

import os
from pathlib import Path

os.environ.setdefault("GENEFACE_CONFIG_DIR", str(Path(__file__).resolve().parents[2] / "configs"))
