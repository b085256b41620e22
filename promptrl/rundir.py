"""A promptrl run on disk: the only code that knows a run's file names.

A run directory holds:
    config.yaml          the config as given (tiny:<asset> names unresolved, so the dir can move)
    metrics.jsonl        one JSON row per step
    images/step_XXXXXX.png  batch grids (written aside, then renamed: readers never see half a PNG)
    checkpoint-XXXXXX/   model + tokenizer + promptrl.json + trainer_state.json/.safetensors
    sft/                 the supervised warm start
    model/               the final model (written aside, then swapped in)
    report.png, samples.md, before_after.png
    heldout.txt          the ideas held out of training (one per line)
    eval/                the start model against the final one on them (`EvalResult.save`)
    train.log            the command line's log: the libraries' messages and warnings

`Run.locate(path)` finds the run of any of those paths (or of a model directory that belongs to
no run) and reads what it records: `.config`, `.start_model`, `.heldout`, `.load_generator()`.
`Run(dir)` is also how the trainer writes one: `.paths` names every file, and `prepare`,
`save_checkpoint`, `write_model`, ... write them so that a kill loses nothing already written.

Trainer state is data (`state.py`): nothing is unpickled, so a checkpoint from a stranger cannot
run code. Paths recorded in a run are relative to it (`run:sft`), so a run dir can be moved or
zipped.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import NotFoundError, UsageError, loading
from .paths import write_dir_atomically
from .state import CheckpointError, load_state, save_state

if TYPE_CHECKING:
    from .config import TrainConfig
    from .ppo.sampling import PromptGenerationConfig, PromptGenerator

logger = logging.getLogger("promptrl")

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
IMAGES_DIR = "images"
MODEL_DIR = "model"
SFT_DIR = "sft"
RUN_INFO_FILE = "promptrl.json"
"""In every model a run writes (model/, checkpoints): the start model, the step, the preset."""
HELDOUT_FILE = "heldout.txt"
EVAL_DIR = "eval"
REPORT_FILE = "report.png"
SAMPLES_FILE = "samples.md"
BEFORE_AFTER_FILE = "before_after.png"
LOG_FILE = "train.log"
SFT_LOSSES_FILE = "sft_losses.json"
STATE_FILE = "trainer_state.json"
TENSORS_FILE = "trainer_state.safetensors"
LEGACY_STATE_FILE = "trainer_state.pt"
HF_TOKENIZER_CONFIG = "tokenizer_config.json"
PREFS_DB_FILE = "preferences.db"
"""The rating store, in the runs dir (not in a run): one person's choices span runs."""
PREFS_IMAGES_DIR = "preference-images"
"""Beside the store: the rated images, as PNG files named by their content hash."""
PREFS_REWARD_DIR = "my-reward"
"""Beside the store: the reward the app fits from a rater's choices."""
"""Written by `save_pretrained` of a tokenizer: a model directory that has it loads its own."""
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
RUN_PREFIX = "run:"
"""Recorded paths inside the run dir are written `run:<relative path>`."""
RUN_MARKERS = (CONFIG_FILE, METRICS_FILE, MODEL_DIR)
CONFIG_KEYS_THAT_MAY_CHANGE = frozenset(
    {
        "steps",
        "save_every",
        "keep_checkpoints",
        "image_every",
        "eval_ideas",
        "trackers",
        "progress",
        "output_dir",
        # the judge samples under its own seeds: how and how often it runs leaves training alone
        "eval.every",
        "eval.samples",
        "eval.judges",
        "eval.bootstrap",
        "eval.seed",
    }
)
"""Keys a resumed run may change: they say how long to run and what to write, not how to train."""

__all__ = ["CheckpointError", "Run", "RunPaths", "load_checkpoint", "load_generator"]


# --------------------------------------------------------------------------- recorded paths


def preference_paths(db: str | Path | None, runs_dir: str | Path = ".") -> tuple[Path, Path]:
    """The rating store (`db`, else `<runs_dir>/preferences.db`) and its images folder beside it."""
    store = Path(db) if db else Path(runs_dir) / PREFS_DB_FILE
    return store, store.parent / PREFS_IMAGES_DIR


def preference_reward_dir(db: str | Path, rater: str) -> Path:
    """Where the app keeps the reward it fits for `rater`: a folder of its own under the store's
    `my-reward/` (a name that is not one plain folder name there is refused)."""
    if rater in ("", ".", "..") or Path(rater).name != rater or "\\" in rater:
        raise UsageError(f"rater name {rater[:40]!r} cannot name a folder; use letters, digits and . _ @ -")
    return Path(db).parent / PREFS_REWARD_DIR / rater


def portable(path: str, run_dir: str | Path) -> str:
    """`path` as recorded in a run: `run:<relative>` when inside `run_dir`, else unchanged."""
    p, run = Path(path), Path(run_dir).resolve()
    if p.is_absolute() or p.exists():
        resolved = p.resolve()
        if resolved == run or run in resolved.parents:
            return RUN_PREFIX + resolved.relative_to(run).as_posix()
    return path


def resolve_recorded(value: str, run_dir: str | Path) -> str:
    """The inverse of `portable` for the run dir `run_dir` is in now."""
    if value.startswith(RUN_PREFIX):
        return str(Path(run_dir) / value[len(RUN_PREFIX) :])
    return value


# --------------------------------------------------------------------------- the layout


@dataclass(frozen=True)
class RunPaths:
    """Every file and folder of the run in `root`, by what it holds."""

    root: Path

    config = property(lambda self: self.root / CONFIG_FILE)
    metrics = property(lambda self: self.root / METRICS_FILE)
    images = property(lambda self: self.root / IMAGES_DIR)
    model = property(lambda self: self.root / MODEL_DIR)
    sft = property(lambda self: self.root / SFT_DIR)
    sft_losses = property(lambda self: self.root / SFT_DIR / SFT_LOSSES_FILE)
    heldout = property(lambda self: self.root / HELDOUT_FILE)
    eval = property(lambda self: self.root / EVAL_DIR)
    report = property(lambda self: self.root / REPORT_FILE)
    samples = property(lambda self: self.root / SAMPLES_FILE)
    before_after = property(lambda self: self.root / BEFORE_AFTER_FILE)
    log = property(lambda self: self.root / LOG_FILE)

    def image(self, step: int) -> Path:
        """The batch grid of `step`."""
        return self.images / f"step_{step:06d}.png"

    def image_grids(self) -> list[Path]:
        """The finished batch grids, oldest first."""
        return sorted(self.images.glob("step_*.png"))

    def checkpoint(self, step: int) -> Path:
        return self.root / f"checkpoint-{step:06d}"

    def checkpoints(self) -> list[Path]:
        """`checkpoint-*` dirs, oldest first."""
        found = [p for p in self.root.glob("checkpoint-*") if CHECKPOINT_RE.match(p.name) and p.is_dir()]
        return sorted(found, key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))


def checkpoints(run_dir: str | Path) -> list[Path]:
    """`checkpoint-*` dirs of a run, oldest first."""
    return RunPaths(Path(run_dir)).checkpoints()


def is_checkpoint(path: str | Path) -> bool:
    path = Path(path)
    return (path / STATE_FILE).exists() or (path / LEGACY_STATE_FILE).exists()


def find_checkpoint(path: str | Path) -> Path:
    """`path` itself if it is a checkpoint, else the newest `checkpoint-*` inside it."""
    path = Path(path)
    if is_checkpoint(path):
        return path
    newest = Run(path).newest_checkpoint()
    if newest is None:
        raise NotFoundError(f"No checkpoint in {path}: expected {STATE_FILE} or checkpoint-* directories.")
    return newest


def load_checkpoint(path: str | Path) -> tuple[Path, dict]:
    """(checkpoint dir, trainer state) of `path` (a checkpoint) or of the newest checkpoint of
    `path` (a run dir) that loads; a broken one is named in a warning and the previous one tried."""
    path = Path(path)
    if is_checkpoint(path):
        return path, read_checkpoint(path)
    candidates = checkpoints(path)
    if not candidates:
        raise NotFoundError(f"No checkpoint to resume in {path}: expected {STATE_FILE} or checkpoint-* directories.")
    errors = []
    for ckpt in reversed(candidates):
        try:
            return ckpt, read_checkpoint(ckpt)
        except CheckpointError as err:
            logger.warning("%s; falling back to the previous checkpoint.", err)
            errors.append(str(err))
    raise CheckpointError(f"No checkpoint in {path} could be loaded: {' | '.join(errors)}")


def read_checkpoint(ckpt: Path) -> dict:
    """The trainer state of one checkpoint, after checking every weights file in it reads."""
    if (ckpt / LEGACY_STATE_FILE).exists() and not (ckpt / STATE_FILE).exists():
        raise CheckpointError(
            f"{ckpt / LEGACY_STATE_FILE} is a pickle from an older promptrl; it is not loaded "
            "because unpickling can run code. Start a new run."
        )
    from safetensors import safe_open

    for weights in sorted(ckpt.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt") as f:
                for key in f.keys():
                    f.get_tensor(key)
        except Exception as err:  # safetensors raises its own error types for every kind of damage
            raise CheckpointError(f"checkpoint file {weights} is unreadable ({type(err).__name__}: {err})") from None
    return load_state(ckpt / STATE_FILE, ckpt / TENSORS_FILE)


def config_changes(old: dict, new: dict, prefix: str = "") -> dict[str, tuple]:
    """`{dotted key: (old, new)}` for every value that differs between two config dicts."""
    out = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(config_changes(a, b, f"{prefix}{key}."))
        elif a != b:
            out[f"{prefix}{key}"] = (a, b)
    return out


# --------------------------------------------------------------------------- generators


def has_tokenizer(directory: str | Path) -> bool:
    """Whether `directory` holds a tokenizer written by `save_pretrained`."""
    return (Path(directory) / HF_TOKENIZER_CONFIG).exists()


def load_generator(
    source: str | Path,
    generation: PromptGenerationConfig,
    device: str | None = None,
    tokenizer: str | None = None,
) -> PromptGenerator:
    """A `PromptGenerator` of the value-head model `source` (a directory or hub name) in eval
    mode on `device`, sampling with `generation`. Its tokenizer: the one saved beside the model,
    else `tokenizer`, else `source`'s."""
    from transformers import AutoTokenizer

    from .devices import resolve_device
    from .paths import check_model_source
    from .ppo.sampling import PromptGenerator
    from .ppo.value_head import ValueHeadModel

    check_model_source(source, "Model")
    source = str(source)
    model = ValueHeadModel.from_pretrained(source).to(resolve_device(device)).eval()
    tokenizer = source if has_tokenizer(source) else tokenizer or source
    with loading("tokenizer", tokenizer):
        return PromptGenerator(model, AutoTokenizer.from_pretrained(tokenizer), generation)


# --------------------------------------------------------------------------- the run


class Run:
    """A run directory (`root`, None for a model of no run) and the model in it that was asked for.

    Read one with `Run.locate(path)`; write one with `Run(output_dir)`.
    """

    def __init__(self, root: str | Path | None, model: str | Path | None = None):
        self.root = Path(root) if root is not None else None
        self.paths = RunPaths(self.root) if self.root is not None else None
        self.model = Path(model) if model is not None else (self.paths.model if self.paths else None)
        """The model directory this run stands for: its final model, a checkpoint or `sft/`."""

    def __repr__(self) -> str:
        return f"Run(root={self.root}, model={self.model})"

    # -- finding ----------------------------------------------------------------------------
    @classmethod
    def locate(cls, path: str | Path) -> Run:
        """The run `path` belongs to, and the model it names.

        `path` may be a run directory (its final model, else its newest checkpoint), the run's
        `model/`, a `checkpoint-*` or `sft/`, or any directory written by `save_pretrained`
        (then `root` is None: a model of no run).
        """
        path = Path(path)
        if not path.exists():
            raise NotFoundError(
                f"{path} does not exist: pass a run directory, its model/ or checkpoint-*, "
                "or a directory written by save_pretrained."
            )
        if (path / CONFIG_FILE).exists():
            run = cls(path)
            run.model = run.latest_model()
            if run.model is None:
                raise NotFoundError(
                    f"Run directory {path} holds no final model ({MODEL_DIR}/) and no checkpoint-* yet."
                )
            return run
        if (path.parent / CONFIG_FILE).exists():
            return cls(path.parent, path)
        return cls(None, path)

    def latest_model(self) -> Path | None:
        """The final model once written, else the newest checkpoint, else None."""
        return self.final_model() or self.newest_checkpoint()

    def final_model(self) -> Path | None:
        """`model/` once the run has written it (it is swapped in whole: present means complete)."""
        return self.paths.model if (self.paths.model / RUN_INFO_FILE).exists() else None

    def newest_checkpoint(self) -> Path | None:
        """The newest `checkpoint-*` that holds trainer state, else None."""
        found = [p for p in self.paths.checkpoints() if is_checkpoint(p)]
        return found[-1] if found else None

    @property
    def eval_dir(self) -> Path:
        """Where `promptrl eval` writes by default: the run's eval/, else ./eval."""
        return self.paths.eval if self.paths is not None else Path(EVAL_DIR)

    # -- what it records ---------------------------------------------------------------------
    def model_info(self) -> dict:
        """The model's `promptrl.json` (start model, step, preset); {} when it has none."""
        info = self.model / RUN_INFO_FILE if self.model is not None else None
        return json.loads(info.read_text()) if info is not None and info.exists() else {}

    @property
    def step(self) -> int:
        """The training step the model was saved at (its `promptrl.json`); 0 when nothing records
        one (a warm start, a model of no run)."""
        return int(self.model_info().get("step", 0))

    def load_config(self, overrides: list[str] | None = None) -> TrainConfig:
        """The settings the model was trained with (`tiny:` names as recorded): the run's
        config.yaml, else the preset its `promptrl.json` names, else the default preset; then
        `overrides` (`key=value`)."""
        from .config import load_config

        if self.root is not None:
            return load_config(None, str(self.paths.config), overrides)
        return load_config(self.model_info().get("preset"), None, overrides)

    @functools.cached_property
    def config(self) -> TrainConfig:
        """`load_config()`, read once."""
        return self.load_config()

    @functools.cached_property
    def _start(self) -> tuple[str | None, str]:
        from .standins.tiny import resolve_tiny

        info = self.model_info()
        if "start_model" in info:  # recorded portably: `run:sft` or `tiny:policy`
            where = self.root if self.root is not None else self.model.parent
            return resolve_tiny(resolve_recorded(info["start_model"], where)), f"recorded in {RUN_INFO_FILE}"
        if self.root is None:
            return None, "no promptrl run records it"
        config = self.config
        if config.sft.enabled and self.model.resolve() != self.paths.sft.resolve():
            return str(self.paths.sft), "the run's supervised warm start"
        return resolve_tiny(config.policy.model), f"the run's {CONFIG_FILE}"

    @property
    def start_model(self) -> str | None:
        """The model training started from (a path or hub name, ready to load), or None when
        nothing records it (a model of no run)."""
        return self._start[0]

    @property
    def start_source(self) -> str:
        """How `start_model` was found, in words."""
        return self._start[1]

    @property
    def heldout(self) -> list[str] | None:
        """The ideas the run held out of training, or None when it records none."""
        if self.paths is None or not self.paths.heldout.exists():
            return None
        return [line for line in self.paths.heldout.read_text(encoding="utf-8").splitlines() if line]

    def load_generator(
        self,
        source: str | Path | None = None,
        device: str | None = None,
        config: TrainConfig | None = None,
        generation: PromptGenerationConfig | None = None,
    ) -> PromptGenerator:
        """A `PromptGenerator` of `source` (default: this run's model; `run.start_model` for the
        start) sampling as `config` (default: the run's) says, or with `generation`."""
        from .standins.tiny import resolve_tiny

        config = resolve_tiny(config or self.config)
        return load_generator(
            source if source is not None else self.model,
            generation or config.generation,
            device,
            config.policy.tokenizer,
        )

    # -- writing ------------------------------------------------------------------------------
    def is_used(self) -> bool:
        """Whether the directory already holds a run (a config, metrics, checkpoints or a final model)."""
        return any((self.root / name).exists() for name in RUN_MARKERS) or bool(self.paths.checkpoints())

    def prepare(self, resume: bool, overwrite: bool, write: bool = True) -> None:
        """Create the directory; refuse to start a new run over an old one unless told to
        replace it. Every process checks; only the one with `write` (the main process) deletes
        and creates."""
        run = self.root
        if not resume and self.is_used() and not overwrite:
            raise UsageError(
                f"output_dir {run} already holds a run; pass --resume {run} to continue it, "
                "--overwrite to replace it, or choose another --output-dir."
            )
        if not write:
            return
        if not resume and self.is_used():
            for name in (*RUN_MARKERS, SFT_DIR, IMAGES_DIR, REPORT_FILE, SAMPLES_FILE, BEFORE_AFTER_FILE):
                target = run / name
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
            for ckpt in self.paths.checkpoints():
                shutil.rmtree(ckpt)
        run.mkdir(parents=True, exist_ok=True)
        for stale in run.glob(".tmp-*"):  # left by a kill during a write
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()

    def check_resume(self, new: dict) -> None:
        """Refuse to resume with a config that differs from config.yaml in a key that changes training."""
        import yaml

        if not self.paths.config.exists():
            return
        old = yaml.safe_load(self.paths.config.read_text()) or {}
        changed = {k: v for k, v in config_changes(old, new).items() if k not in CONFIG_KEYS_THAT_MAY_CHANGE}
        if changed:
            listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in changed.items()))
            raise UsageError(
                f"Cannot resume {self.root} with a different config ({listed}). Only "
                f"{', '.join(sorted(CONFIG_KEYS_THAT_MAY_CHANGE))} may change on resume; "
                "start a new run (another --output-dir) to train differently."
            )

    def write_start(self, config: TrainConfig, heldout: list[str], history: list[dict]) -> None:
        """config.yaml, heldout.txt, and metrics.jsonl holding `history` (a resumed run's rows)."""
        from .config import save_config

        save_config(config, self.paths.config)
        self.paths.heldout.write_text("".join(f"{idea}\n" for idea in heldout))
        self.paths.metrics.write_text("".join(json.dumps(row) + "\n" for row in history))

    def append_metrics(self, row: dict) -> None:
        with open(self.paths.metrics, "a") as f:
            f.write(json.dumps(row) + "\n")

    @staticmethod
    def write_model_info(directory: str | Path, start_model: str, step: int, preset: str | None) -> None:
        """`promptrl.json` beside a saved model: where it started (recorded portably), its step, its preset."""
        info = {"start_model": start_model, "step": step, "preset": preset}
        (Path(directory) / RUN_INFO_FILE).write_text(json.dumps(info, indent=2))

    def save_checkpoint(self, step: int, write_model: Callable[[Path], None], state: dict, keep: int) -> Path:
        """Write `checkpoint-<step>` atomically (model files and trainer state), keep the newest `keep`."""
        if keep < 1:
            raise UsageError(f"keep_checkpoints must be at least 1, got {keep}.")

        def write(tmp: Path) -> None:
            write_model(tmp)
            save_state(state, tmp / STATE_FILE, tmp / TENSORS_FILE)

        final = write_dir_atomically(self.paths.checkpoint(step), write)
        for old in self.paths.checkpoints()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def save_model(self, write_model: Callable[[Path], None]) -> Path:
        """The final model, written aside and swapped in for `model/`."""
        return write_dir_atomically(self.paths.model, write_model)

    def save_sft(self, write_model: Callable[[Path], None], losses: list[float]) -> Path:
        """The supervised warm start in `sft/`, with its losses."""

        def write(tmp: Path) -> None:
            write_model(tmp)
            (tmp / SFT_LOSSES_FILE).write_text(json.dumps(losses))

        return write_dir_atomically(self.paths.sft, write)
