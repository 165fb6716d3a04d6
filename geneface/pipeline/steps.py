"""What `python -m geneface.pipeline` runs for one speaker: each step is one of the house's own commands
(process, train, evaluate, infer) with its arguments, and the files that show it finished. Running
the commands as they are, rather than their functions, keeps one way to do each thing: a user who
re-runs one step by hand gets what the pipeline got, and every step resumes by its own rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geneface.data import contract

TRAINED_STAGES = ("audio2motion", "postnet", "radnerf", "radnerf_torso")   # per speaker, in order
SPEAKER_ONLY_STAGES = TRAINED_STAGES[1:]                     # (a corpus trains an audio2motion too)
CORPUS_STAGES = ("syncnet", "audio2motion")                  # what the postnet adapts, per corpus
STEP_NAMES = ("process", *TRAINED_STAGES, "evaluate", "sample")
# what the evaluation and the sample render with (renderer=): the head pasted into the speaker's own
# frames (no torso stage to train), or head and torso over the plate
RENDERERS = ("radnerf", "radnerf_torso")


class PipelineError(Exception):
    """A step cannot start or failed: the message says why and what to run."""


@dataclass
class Step:
    name: str
    argv: list[str]                       # the command, as a user would type it (after `python`)
    outputs: list[Path]                   # all present (and the step recorded done) = complete
    checkpoint: Path | None = None        # a training step's last.ckpt: resumed unless stale
    outputs_suffice: bool = False         # complete when its outputs exist, recorded or not (atomic writers)
    describe: str = ""
    extra: dict = field(default_factory=dict)

    def command_line(self) -> str:
        return "python " + " ".join(_quote(a) for a in self.argv)


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in " ()[]{}*?$\"") else arg


@dataclass
class Paths:
    """Where one speaker's things are (configs/paths/default.yaml's layout)."""
    output_dir: Path
    data_dir: Path
    configs_dir: Path
    speaker: str

    @property
    def dataset(self) -> Path:
        return self.data_dir / self.speaker

    @property
    def speaker_config(self) -> Path:
        return self.configs_dir / "speaker" / f"{self.speaker}.yaml"

    @property
    def speaker_dir(self) -> Path:
        return self.output_dir / self.speaker

    @property
    def pipeline_dir(self) -> Path:
        return self.speaker_dir / "pipeline"

    def stage_dir(self, stage: str, name: str | None = None) -> Path:
        return self.output_dir / (name or self.speaker) / stage

    def evaluation(self, renderer: str) -> Path:
        return self.speaker_dir / "evaluate" / f"{renderer}.json"


def trained_corpora(output_dir: Path) -> list[str]:
    """Corpus names whose syncnet and audio2motion both have a best.ckpt under output_dir."""
    names = []
    for vae in sorted(output_dir.glob("*/audio2motion/best.ckpt")):
        name = vae.parent.parent.name
        if (output_dir / name / "syncnet" / "best.ckpt").is_file():
            names.append(name)
    return names


def corpus_commands(corpus: str, preset: str) -> str:
    return (f"  python -m geneface.train stage=syncnet speaker={corpus} preset={preset}\n"
            f"  python -m geneface.train stage=audio2motion speaker={corpus} preset={preset}")


def choose_corpus(requested: str, paths: Paths, preset: str) -> str:
    """The corpus whose models the postnet adapts: `requested`, or with 'auto' lrs3 when trained,
    else the one corpus trained here. Raises PipelineError, with the commands that train one, before
    anything long starts."""
    trained = trained_corpora(paths.output_dir)
    if requested != "auto":
        missing = [paths.stage_dir(s, requested) / "best.ckpt" for s in CORPUS_STAGES
                   if not (paths.stage_dir(s, requested) / "best.ckpt").is_file()]
        if missing:
            raise PipelineError(
                f"the postnet adapts the {requested!r} corpus's models, and "
                f"{', '.join(str(m) for m in missing)} {'is' if len(missing) == 1 else 'are'} missing. "
                f"Train them first:\n{corpus_commands(requested, preset)}\n"
                + (f"or pass corpus=<one trained here: {', '.join(trained)}>" if trained else
                   "(the corpus itself comes from `python -m geneface.process.corpus`, README 'Processing real video')"))
        return requested
    if "lrs3" in trained:
        return "lrs3"
    if len(trained) == 1:
        return trained[0]
    if trained:
        raise PipelineError(f"several corpora are trained here ({', '.join(trained)}): choose the one the "
                            f"postnet adapts with corpus=<name>")
    raise PipelineError(
        "the postnet adapts a corpus's audio→motion model, and none is trained under "
        f"{paths.output_dir} (looked for */syncnet/best.ckpt and */audio2motion/best.ckpt). Process a clip "
        "corpus (README 'Processing real video': python -m geneface.process.corpus ...) and train its two "
        f"stages, then run this again with corpus=<its name>:\n{corpus_commands('<corpus>', preset)}")


def check_dataset_source(paths: Paths, video: str | None) -> None:
    """A finished dataset of the same name made from another video is not this speaker's: stop rather
    than train on it (or overwrite it)."""
    meta_path = paths.dataset / contract.META_FILE
    if video is None or not meta_path.is_file():
        return
    source = json.loads(meta_path.read_text()).get("source_video")
    if source and Path(source).resolve() != Path(video).resolve():
        raise PipelineError(f"{paths.dataset} was processed from {source}, not {video}: give this video "
                            f"another speaker= name, or move {paths.dataset} aside to process it again")


def write_val_audio(dataset: Path, out: Path) -> Path:
    """The speaker's own held-out audio (the val split's frames of audio.wav): the default sample's
    sound, speech the renderer never trained on."""
    from geneface.media.audio import load_audio, write_wav

    meta = json.loads((dataset / contract.META_FILE).read_text())
    rate, fps = int(meta["sample_rate"]), int(meta["fps"])
    wave = load_audio(dataset / contract.SPEAKER_AUDIO, rate)
    per_frame = rate // fps
    val = wave[int(meta["num_train"]) * per_frame: int(meta["num_frames"]) * per_frame]
    if len(val) < per_frame * fps:                      # under a second: the whole audio reads better
        val = wave
    write_wav(out, np.asarray(val, np.float32), rate)
    return out


def plan(paths: Paths, *, video: str | None, preset: str, corpus: str, wav: str | None,
         evaluate_frames: int | None, sample_seconds: float | None, device: str,
         overrides: dict[str, list[str]], steps: list[str], renderer: str = RENDERERS[0]) -> list[Step]:
    """The steps to run, in order, as commands (see the module docstring). The torso stage runs only
    for renderer=radnerf_torso: the head alone is pasted into the speaker's own frames."""
    unknown = sorted(set(steps) - set(STEP_NAMES))
    if unknown:
        raise PipelineError(f"unknown step(s) {unknown}: steps are {list(STEP_NAMES)}")
    if renderer not in RENDERERS:
        raise PipelineError(f"renderer={renderer!r}: choose {' or '.join(RENDERERS)}")
    speaker, py = paths.speaker, ["-m"]
    extra = {name: list(overrides.get(name) or []) for name in STEP_NAMES}
    all_steps: list[Step] = []
    if video is None and not (paths.dataset / contract.META_FILE).is_file():
        raise PipelineError(f"there is no dataset {paths.dataset} yet: pass the speaker's video, "
                            f"video=<file> (any format ffmpeg reads, ≥ 15 s of one face talking)")
    process_argv = [*py, "geneface.process", f"speaker={speaker}", f"video={video}",
                    f"data_dir={paths.data_dir}", f"configs_dir={paths.configs_dir}", *extra["process"]]
    all_steps.append(Step("process", process_argv, [paths.dataset / contract.META_FILE, paths.speaker_config],
                          describe="video → frames, labels, landmarks, pose, audio features",
                          outputs_suffice=True))     # a dataset is written atomically, meta.json last
    for stage in (s for s in TRAINED_STAGES if s != "radnerf_torso" or renderer == "radnerf_torso"):
        stage_dir = paths.stage_dir(stage)
        done_file = stage_dir / ("selected.ckpt" if stage == "postnet" else "best.ckpt")
        how = {"audio2motion": ["experiment=speaker_audio2motion", f"stage.corpus_name={corpus}"],
               "postnet": ["stage=postnet", f"stage.corpus_name={corpus}",
                           f"stage.model.vae_ckpt={paths.stage_dir('audio2motion') / 'best.ckpt'}"]}
        argv = [*py, "geneface.train", *how.get(stage, [f"stage={stage}"]), f"speaker={speaker}", f"preset={preset}",
                *extra[stage]]
        all_steps.append(Step(stage, argv, [done_file, stage_dir / "last.ckpt"], checkpoint=stage_dir / "last.ckpt",
                              describe={"audio2motion": f"the {corpus} corpus's audio→motion VAE fine-tuned on "
                                                        "this speaker's voice",
                                        "postnet": "refines that motion towards this speaker's landmarks",
                                        "radnerf": "the head renderer",
                                        "radnerf_torso": "the torso under the head"}[stage]))
    syncnet = paths.stage_dir("syncnet", corpus) / "best.ckpt"
    frames = [] if evaluate_frames is None else [f"max_frames={int(evaluate_frames)}"]
    all_steps.append(Step("evaluate", [*py, "geneface.evaluate", f"speaker={speaker}", f"renderer={renderer}",
                                       f"syncnet_ckpt={syncnet}", f"device={device}", *frames, *extra["evaluate"]],
                          [paths.evaluation(renderer)], describe="scores on the val split"))
    audio = Path(wav) if wav else paths.pipeline_dir / f"{speaker}_val_audio.wav"
    seconds = [] if sample_seconds is None else [f"max_seconds={sample_seconds:g}"]
    all_steps.append(Step("sample", [*py, "geneface.infer", f"speaker={speaker}", f"wav={audio}",
                                     f"renderer={renderer}", f"device={device}", *seconds, *extra["sample"]],
                          [paths.speaker_dir / "infer" / f"{audio.stem}_{renderer}.mp4"],
                          describe="a talking-head mp4" + ("" if wav else " on the speaker's own held-out audio")
                          + (" in their own video's frames" if renderer == "radnerf" else ""),
                          extra={"val_audio": None if wav else (paths.dataset, audio)}))
    return [s for s in all_steps if s.name in steps]


