"""Chooses the postnet's early-stopping checkpoint by GeneFace's three rules (§5):

1. low `val/mse` and `val/sync`: each within `metric_factor` × the best value over all candidates;
2. the adversarial game has converged: `val/disc_pos_conf` and `val/disc_neg_conf` both within
   `conf_tolerance` of `conf_target` (0.5: the discriminator cannot tell the two domains apart);
3. the fewest steps (longer training risks mode collapse).

Tie-break when the rules disagree: among the candidates that pass rules 1 and 2, the fewest steps
wins. When none passes both, the candidate whose confidences are closest to the target wins
(largest of the two gaps), then the lowest mse/best_mse + sync/best_sync, then the fewest steps;
the JSON says `"mode": "fallback"` then.

A checkpoint is saved at every validation (`<dirpath>/candidates/step=N.ckpt`) with its metrics; at
the end of fit the winner is copied to `<dirpath>/selected.ckpt` and `<dirpath>/selected.json`
records the winner, its metrics, the thresholds and, for every other candidate, why it lost.
The history is part of the callback's state, so resumed runs pick among all validations.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from geneface.utils.io import atomic_path, save_json


def pick(history: list[dict], mse_key: str = "val/mse", sync_key: str = "val/sync",
         pos_key: str = "val/disc_pos_conf", neg_key: str = "val/disc_neg_conf", conf_target: float = 0.5,
         conf_tolerance: float = 0.1, metric_factor: float = 1.5) -> dict:
    """history: [{"step": N, "metrics": {key: value}, ...}] → the report written to selected.json
    (its "selected" entry is the winner). A candidate without a sync value (no SyncNet) is judged
    on mse alone."""
    if not history:
        raise ValueError("no validation was recorded: nothing to pick from")
    best_mse = min(c["metrics"][mse_key] for c in history)
    syncs = [c["metrics"][sync_key] for c in history if sync_key in c["metrics"]]
    best_sync = min(syncs) if syncs else None

    def judge(c: dict) -> dict:
        m = c["metrics"]
        fails = []
        if m[mse_key] > metric_factor * best_mse:
            fails.append(f"{mse_key} {m[mse_key]:.4g} > {metric_factor} × best {best_mse:.4g}")
        if best_sync is not None and sync_key in m and m[sync_key] > metric_factor * best_sync:
            fails.append(f"{sync_key} {m[sync_key]:.4g} > {metric_factor} × best {best_sync:.4g}")
        low = not fails
        for key in (pos_key, neg_key):
            if abs(m[key] - conf_target) > conf_tolerance:
                fails.append(f"{key} {m[key]:.3f} is {abs(m[key] - conf_target):.3f} from {conf_target} "
                             f"(> {conf_tolerance}): not converged")
        gap = max(abs(m[pos_key] - conf_target), abs(m[neg_key] - conf_target))
        score = m[mse_key] / best_mse + (m[sync_key] / best_sync if best_sync and sync_key in m else 0.0)
        return {"low_metrics": low, "converged": gap <= conf_tolerance, "passed": not fails, "fails": fails,
                "conf_gap": gap, "metric_score": score}

    judged = [(c, judge(c)) for c in history]
    passing = [(c, j) for c, j in judged if j["passed"]]
    if passing:
        mode = "all_rules"
        winner, wj = min(passing, key=lambda cj: cj[0]["step"])
    else:
        mode = "fallback"
        winner, wj = min(judged, key=lambda cj: (round(cj[1]["conf_gap"], 6), cj[1]["metric_score"], cj[0]["step"]))

    candidates = []
    for c, j in judged:
        entry = {"step": c["step"], "metrics": c["metrics"], "checkpoint": c.get("checkpoint"),
                 "passed": j["passed"], "selected": c is winner}
        if c is not winner:
            if mode == "all_rules":
                why = j["fails"] or [f"passes every rule but step {c['step']} > the winner's {winner['step']} "
                                     f"(rule 3: fewest steps)"]
            else:
                why = [*j["fails"], f"fallback: confidence gap {j['conf_gap']:.3f} vs the winner's "
                       f"{wj['conf_gap']:.3f}, metric score {j['metric_score']:.3f} vs {wj['metric_score']:.3f}"]
            entry["why_not"] = why
        candidates.append(entry)
    return {
        "selected": {"step": winner["step"], "metrics": winner["metrics"], "checkpoint": winner.get("checkpoint"),
                     "passed": wj["passed"], "fails": wj["fails"]},
        "mode": mode,
        "rules": {"mse_key": mse_key, "sync_key": sync_key, "pos_key": pos_key, "neg_key": neg_key,
                  "conf_target": conf_target, "conf_tolerance": conf_tolerance, "metric_factor": metric_factor,
                  "best_mse": best_mse, "best_sync": best_sync,
                  "tie_break": "all rules pass: fewest steps; none passes: closest confidences, "
                               "then lowest mse/best + sync/best, then fewest steps"},
        "candidates": candidates,
    }


class PostnetPicker(L.Callback):
    """Saves a candidate checkpoint at every validation and picks selected.ckpt at the end of fit
    (see the module docstring). Construction touches no file."""

    def __init__(self, dirpath: str, mse_key: str = "val/mse", sync_key: str = "val/sync",
                 pos_key: str = "val/disc_pos_conf", neg_key: str = "val/disc_neg_conf", conf_target: float = 0.5,
                 conf_tolerance: float = 0.1, metric_factor: float = 1.5):
        self.dirpath = Path(dirpath)
        self.rules = dict(mse_key=mse_key, sync_key=sync_key, pos_key=pos_key, neg_key=neg_key,
                          conf_target=conf_target, conf_tolerance=conf_tolerance, metric_factor=metric_factor)
        self.history: list[dict] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        keys = [self.rules[k] for k in ("mse_key", "sync_key", "pos_key", "neg_key")]
        metrics = {k: float(trainer.callback_metrics[k]) for k in keys if k in trainer.callback_metrics}
        if any(self.rules[k] not in metrics for k in ("mse_key", "pos_key", "neg_key")):
            return
        step = int(trainer.global_step)
        path = self.dirpath / "candidates" / f"step={step}.ckpt"
        self.history = [c for c in self.history if c["step"] != step]
        self.history.append({"step": step, "metrics": metrics, "checkpoint": str(path.relative_to(self.dirpath))})
        trainer.save_checkpoint(path)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.history or not trainer.is_global_zero:
            return
        report = pick(self.history, **self.rules)
        with atomic_path(self.dirpath / "selected.ckpt") as tmp:     # a kill never leaves half of one
            shutil.copyfile(self.dirpath / report["selected"]["checkpoint"], tmp)
        report["selected_checkpoint"] = "selected.ckpt"
        save_json(self.dirpath / "selected.json", report)
        rank_zero_info(f"postnet: selected step {report['selected']['step']} ({report['mode']}) → "
                       f"{self.dirpath / 'selected.ckpt'}")

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict.get("history", []))
