"""The Train tab's background run: at most one PPO run at a time, in a thread; the UI polls it.

Everything it writes stays inside its runs dir: each run in `<runs dir>/<preset>-<time>`, the
zip offered for download in `<runs dir>/.downloads` (only the newest one is kept).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
from pathlib import Path

import pandas as pd

from ..config import TrainConfig
from ..errors import PromptrlError
from ..paths import inside
from ..rundir import Run
from ..trainer import PromptTrainer
from .limits import UserError

logger = logging.getLogger("promptrl")
DOWNLOADS_DIR = ".downloads"


class TrainingRun:
    """At most one PPO run at a time, in a background thread; the UI polls its state."""

    def __init__(self, runs_dir: str | Path, extra_rewards: dict | None = None):
        self.runs_dir = Path(runs_dir).resolve()
        self.extra_rewards = dict(extra_rewards or {})
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.phase = "idle"
        self.message = ""
        self.total = 0
        self.history: list[dict] = []
        self.output_dir: Path | None = None
        self.trainer: PromptTrainer | None = None
        self.download_dir = self.runs_dir / DOWNLOADS_DIR
        shutil.rmtree(self.download_dir, ignore_errors=True)  # zips of an earlier server

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, config: TrainConfig, ideas: list[str] | None) -> str:
        """Start `config` (its output dir is chosen here, inside the runs dir) on `ideas` (default:
        the config's)."""
        with self._lock:
            if self.active:
                raise UserError("A training run is already going (one at a time): stop it first.")
            name = f"{config.preset or 'custom'}-{time.strftime('%Y%m%d-%H%M%S')}"
            output_dir = self.runs_dir / name
            suffix = 1
            while output_dir.exists():
                suffix += 1
                output_dir = self.runs_dir / f"{name}-{suffix}"
            self.output_dir = inside(self.runs_dir, output_dir)
            config = dataclasses.replace(config, output_dir=str(self.output_dir), progress=False)
            self.phase, self.message, self.total = "starting", "loading models", config.steps
            self.history, self.trainer = [], None
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, args=(config, ideas), daemon=True, name="promptrl-train")
            self._thread.start()
        return f"Started a run of {config.steps} steps in `{self.output_dir.name}`."

    def stop(self) -> str:
        if not self.active:
            return "No run is going."
        self._stop.set()
        self.phase = "stopping"
        return "Stopping after the current step (a checkpoint and the final model are still written)."

    def _run(self, config: TrainConfig, ideas: list[str] | None) -> None:
        try:
            self.trainer = PromptTrainer(config, ideas=ideas, extra_rewards=self.extra_rewards)
            self.trainer.train(callback=self._step_done, should_stop=self._stop.is_set)
            self.phase = "stopped" if self.trainer.step < config.steps else "finished"
        except PromptrlError as err:
            logger.warning("Training run refused: %s", err)
            self.phase, self.message = "failed", str(err)
        except Exception:
            logger.exception("Training run failed")
            self.phase, self.message = "failed", "an internal error (the server's log has the details)"

    def _step_done(self, metrics: dict) -> None:
        self.history.append(metrics)
        if self.phase == "starting":
            self.phase = "running"

    def status(self) -> str:
        done = len(self.history)
        last = self.history[-1] if self.history else {}
        progress = (
            f" (reward {last['reward/total/mean']:.3f}, KL {last.get('objective/kl', float('nan')):.3f})"
            if last
            else ""
        )
        where = f" in `{self.output_dir.name}`" if self.output_dir else ""
        text = {
            "idle": "idle",
            "starting": f"starting: {self.trainer.phase if self.trainer else 'loading'}…",
            "running": (
                f"running step {done + 1} of {self.total}{progress}"
                if done < self.total
                else f"finishing: all {self.total} steps done{progress}; scoring the final model"
            ),
            "stopping": f"stopping after step {done + 1} of {self.total}{progress}",
            "finished": f"finished: {done} of {self.total} steps{progress}; final model{where}",
            "stopped": (
                f"stopped after {done} of {self.total} steps{progress}; checkpoint and model{where}"
                if done
                else "stopped before the first step"
            ),
            "failed": f"failed: {self.message}",
        }[self.phase]
        return f"**Training:** {text}"

    def plot_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Long-format (step, value, series) frames: reward components, KL and its coefficient."""
        rewards, kl = [], []
        for row in list(self.history):
            for key, value in row.items():
                if key.startswith("reward/") and key.endswith("/mean"):
                    rewards.append((row["step"], value, key[len("reward/") : -len("/mean")]))
            for key, series in (("objective/kl", "KL"), ("objective/kl_coef", "KL coefficient")):
                if key in row:
                    kl.append((row["step"], row[key], series))
        columns = ["step", "value", "series"]
        return pd.DataFrame(rewards, columns=columns), pd.DataFrame(kl, columns=columns)

    def samples_key(self) -> tuple:
        grids = Run(self.output_dir).paths.image_grids() if self.output_dir else []
        trainer = self.trainer
        return (
            self.output_dir,
            self.phase,  # the poll that reports the end also carries the final plots and samples
            len(self.history),
            tuple(p.name for p in grids[-2:]),
            trainer is not None and trainer.before is not None,
            trainer is not None and trainer.after is not None,
        )

    def samples(self) -> list[tuple]:
        """Starting-model samples, the newest batch grids, then the final model's samples."""
        from PIL import Image

        trainer, items = self.trainer, []
        if trainer is not None and trainer.before is not None:
            items += [(s["image"], f"start · reward {s['reward']:.3f} · {s['prompt']}") for s in trainer.before]
        for path in Run(self.output_dir).paths.image_grids()[-2:] if self.output_dir else []:
            try:
                with Image.open(path) as img:
                    items.append((img.copy(), f"batch at step {int(path.stem.split('_')[1])}"))
            except OSError:  # removed since it was listed: the next poll shows the newer grids
                continue
        for s in (trainer.after if trainer is not None else None) or []:
            items.append((s["image"], f"final · reward {s['reward']:.3f} · {s['prompt']}"))
        return items

    def close(self) -> None:
        """Remove the download zips (the server is going away)."""
        shutil.rmtree(self.download_dir, ignore_errors=True)

    def zip_latest(self) -> Path:
        """Zip of the final model (once written) or the newest checkpoint."""
        if self.output_dir is None:
            raise UserError("No training run yet: start one in this tab first.")
        run = Run(self.output_dir)
        # The final model once the run is over; while it runs, the newest checkpoint.
        source = run.final_model() if not self.active else None
        source = source or run.newest_checkpoint()
        if source is None:
            raise UserError("No checkpoint yet: one is written every `save_every` steps and when the run ends.")
        shutil.rmtree(self.download_dir, ignore_errors=True)  # one zip at a time on disk
        self.download_dir.mkdir(parents=True)
        base = inside(self.runs_dir, self.download_dir / f"{self.output_dir.name}-{source.name}")
        try:
            return Path(shutil.make_archive(str(base), "zip", root_dir=source))
        except FileNotFoundError:  # a newer checkpoint replaced this one while zipping
            raise UserError("The checkpoint changed while it was being zipped; try again.") from None
