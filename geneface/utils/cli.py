"""What the entry points check on the command line before Hydra composes anything.

Hydra answers an unknown config choice (`speaker=nobody`) with its config-search dump; a user needs to
hear which file is missing, which choices exist and how a new speaker is made.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"   # the repository's configs/

HOW_TO_ADD = {
    "speaker": "A speaker config is written by processing the speaker's video:\n"
               "    python -m geneface.process speaker={name} video=<their video>.mp4\n"
               "(a clip corpus: python -m geneface.process.corpus src=<dir> name={name})",
    "stage": "A stage is a file in configs/stage/; the pipeline's order is syncnet, audio2motion, postnet, "
             "radnerf, radnerf_torso (README: 'Training').",
}


def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def unknown_choice_message(group: str, name: str) -> str | None:
    """None when configs/<group>/<name>.yaml exists, else what to tell the user."""
    if (CONFIG_DIR / group / f"{name}.yaml").is_file():
        return None
    known = choices(group)
    return (f"there is no {group} '{name}': configs/{group}/{name}.yaml does not exist.\n"
            f"{group.capitalize()}s here: {', '.join(known) if known else '(none)'}.\n"
            + HOW_TO_ADD.get(group, "").format(name=name))


def speakers_of_kind(kind: str) -> list[str]:
    """The speaker configs whose `kind:` is `kind` ('speaker': one person's video; 'corpus': clips)."""
    return [name for name in choices("speaker")
            if re.search(rf"^kind:\s*{kind}\b", (CONFIG_DIR / "speaker" / f"{name}.yaml").read_text(), re.M)]


def require_speaker_kind(speaker_cfg, command: str) -> None:
    """A command that renders one person (infer, evaluate) given a clip corpus: say so, not that its
    postnet is missing."""
    if speaker_cfg.get("kind") == "corpus":
        others = speakers_of_kind("speaker")
        raise ValueError(f"'{speaker_cfg.name}' is a clip corpus (configs/speaker/{speaker_cfg.name}.yaml has "
                         f"kind: corpus), not a speaker: {command} renders one person. Speakers here: "
                         f"{', '.join(others) if others else '(none: process a video first)'}.")


def check_choices(argv: list[str], groups: tuple[str, ...] = ("speaker", "stage")) -> None:
    """Exit with status 2 and one clear message when a `group=name` argument (or a sweep's
    `group=a,b`) names a config that does not exist; anything else is left to Hydra."""
    for arg in argv:
        match = re.fullmatch(r"\+?(\w+)=([\w.,-]+)", arg)
        if not match or match.group(1) not in groups:
            continue
        for name in match.group(2).split(","):
            message = unknown_choice_message(match.group(1), name)
            if message:
                print(f"error: {message}", file=sys.stderr)
                raise SystemExit(2)


# what readers, loaders and processing raise for bad input; their own classes subclass one of these
# (Missing-, Damaged-, WrongStage-, OutdatedCheckpointError, ProcessingError, DatasetError)
USER_ERRORS = (FileNotFoundError, ValueError)


@contextmanager
def errors_as_exit(*also: type[BaseException]) -> Iterator[None]:
    """An entry point's expected failures (USER_ERRORS and `also`: a missing file, bad input, whose
    messages already say what is wrong and what to do) as one `error:` line and exit status 1 instead of
    a traceback; anything else is a bug and keeps its traceback."""
    try:
        yield
    except (*USER_ERRORS, *also) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
