"""One command from a speaker's video to its talking head (`python -m geneface.pipeline`): the steps
(steps.py) run as the house's own commands (runner.py), then a report (report.py) from what is on disk
(status.py), which the web app (geneface.app) reads too.

Its config lives in configs/pipeline/ (there `speaker=` names a speaker, not a config group) and finds
configs/paths through GENEFACE_CONFIG_DIR, set as geneface.process sets it."""

import os
from pathlib import Path

os.environ.setdefault("GENEFACE_CONFIG_DIR", str(Path(__file__).resolve().parents[2] / "configs"))
