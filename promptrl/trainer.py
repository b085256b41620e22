"""The image-reward loop: ideas -> prompts -> Stable Diffusion -> rewards -> PPO.

`PromptTrainer(config).train()` runs it with progress, metrics (JSONL + accelerate trackers),
image grids, atomic checkpoints that resume exactly, a report and the final model. The output
directory's layout (and every file name in it) is `rundir.Run`'s. The renderer, the rewards and
the judges load when first used, so the supervised warm start alone loads no image model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from . import rundir
from .config import TrainConfig, flatten
from .errors import UsageError, loading
from .eval.compare import compare_samples, heldout_split, judges_from_config, sample_and_score
from .eval.stats import MARKDOWN_FILE, prompt_stats
from .ideas import load_ideas
from .paths import check_model_source, save_image_atomically
from .plots import image_grid, plot_report, write_before_after
from .ppo.group import ALGORITHMS
from .ppo.rollback import RollbackGuard
from .ppo.sampling import PromptGenerator, Rollout
from .ppo.trainer import PPOTrainer
from .ppo.value_head import ADAPTER_CONFIG_FILE, ValueHeadModel
from .rendering import Renderer, RenderOutput, to_pil
from .rewards import RewardFn, WeightedSum, reward_from_config, score, with_terms
from .rewards.baselines import make_baseline
from .seeds import derive_seed, rng_state, set_rng_state
from .sft import load_corpus, supervised_finetune
from .standins.tiny import resolve_tiny, unresolve_tiny
from .timing import Stopwatch

logger = logging.getLogger("promptrl")


@dataclass
class ScoredRollout:
    """One batch through the loop's first stages: ideas -> sampled prompts -> images -> rewards."""

    rollout: Rollout
    """Ideas, query and response tokens, prompts, and what sampling recorded for PPO."""
    render: RenderOutput
    """Images, the prompts as rendered (cut at the token limit), their seeds and cut flags."""
    total: torch.Tensor
    """`[batch]` reward."""
    components: dict[str, torch.Tensor]
    """Each reward term's `[batch]` values, by name."""
    times: dict[str, float]
    """Seconds per stage (`time/generate`, `time/render`, `time/score`)."""


class PromptTrainer:
    """Fine-tunes a prompt generator with PPO on image rewards.

    Args:
        config: a `TrainConfig` (see `presets.get_preset` / `config.load_config`).
        reward: any reward callable `(images, prompts, ideas) -> Tensor[batch]` or a
            `rewards.WeightedSum`; default: built from `config.rewards`.
        extra_rewards: `{name: (weight, reward_fn)}` added to that reward: your own terms
            beside the built-in ones (a name the reward already has is refused).
        ideas: list, text file, or `datasets` dataset; default: `config.ideas`.
        accelerator: share an existing `Accelerator` (default: a new one from the config).
        renderer: share an already loaded `Renderer` (default: loaded from `config.render`).
        overwrite: replace a run already in `config.output_dir` (default: refuse, unless resuming).
    """

    def __init__(
        self,
        config: TrainConfig,
        reward=None,
        ideas=None,
        accelerator: Accelerator | None = None,
        renderer: Renderer | None = None,
        overwrite: bool = False,
        extra_rewards: dict | None = None,
    ):
        self.given_config = unresolve_tiny(config)  # recorded in config.yaml with tiny:<asset> names: portable
        config = resolve_tiny(config)
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.run = rundir.Run(self.output_dir)
        """The run directory being written: `run.paths` names its files."""
        self.overwrite = overwrite
        self.accelerator = accelerator or Accelerator(
            mixed_precision=config.ppo.mixed_precision,
            log_with=list(config.trackers) or None,
            project_dir=str(self.output_dir),
        )
        check_model_source(config.policy.model, "policy.model")
        check_model_source(config.policy.tokenizer or config.policy.model, "policy.tokenizer")
        with loading("tokenizer", config.policy.tokenizer or config.policy.model):
            self.tokenizer = AutoTokenizer.from_pretrained(config.policy.tokenizer or config.policy.model)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.ideas, self.heldout = heldout_split(
            load_ideas(ideas if ideas is not None else config.ideas), config.eval.heldout, config.seed
        )
        self.extra_rewards = dict(extra_rewards or {})
        configured = [spec.get("name", spec.get("type")) for spec in config.rewards.terms] if reward is None else []
        clash = sorted(set(configured) & set(self.extra_rewards))
        if clash:  # refused now, before anything loads
            raise UsageError(f"reward term name(s) {clash} are taken by the reward already; name yours differently")
        self._reward = with_terms(reward, self.extra_rewards) if reward is not None and extra_rewards else reward
        self._renderer = renderer
        self._judges: WeightedSum | None = None
        self.baseline = make_baseline(config.rewards.baseline)
        self.step = 0
        self.history: list[dict] = []
        self.start_model: str = config.policy.model
        self.start_record: str = self.given_config.policy.model
        """How the run records its starting model: a hub name, `tiny:<asset>` or `run:sft`."""
        self.ppo: PPOTrainer | None = None
        """The policy optimiser of `config.algorithm` (a `PPOTrainer`, `GRPOTrainer` or `RLOOTrainer`), once set up."""
        self.guard: RollbackGuard | None = None
        self.generator: PromptGenerator | None = None
        self.before: list[dict] | None = None
        """Samples of the start model on fixed ideas (prompt, reward, image each), once sampled."""
        self.after: list[dict] | None = None
        """The same ideas sampled by the final model, once the run has finished."""
        self._start_generator: PromptGenerator | None = None
        self.heldout_eval = None
        """`EvalResult` of the start model against the final one on the held-out ideas, once finished."""
        self.phase = "created"
        """What the trainer is doing: created, warm start, loading, sampling the start model,
        training, finishing, finished."""

    # -- what loads on first use ----------------------------------------------------------------
    @property
    def reward(self) -> RewardFn:
        """The reward: the one given, else `config.rewards`, with `extra_rewards` beside it."""
        if self._reward is None:
            built = reward_from_config(self.config.rewards, self.accelerator.device)
            self._reward = with_terms(built, self.extra_rewards) if self.extra_rewards else built
        return self._reward

    @property
    def renderer(self) -> Renderer:
        """The diffusers pipeline (the one given, else `config.render`'s, on the trainer's device)."""
        if self._renderer is None:
            render = self.config.render
            if not render.device:
                render = dataclasses.replace(render, device=str(self.accelerator.device))
            self._renderer = Renderer(render)
        return self._renderer

    @reward.setter
    def reward(self, reward: RewardFn) -> None:
        self._reward = reward

    @renderer.setter
    def renderer(self, renderer: Renderer) -> None:
        self._renderer = renderer

    @property
    def judges(self) -> WeightedSum | None:
        """The held-out judges (`eval.judges`), or None when no ideas are held out."""
        if self._judges is None and self.heldout:
            self._judges = judges_from_config(self.config, self.accelerator.device)
        return self._judges

    # -- set-up ------------------------------------------------------------------------------
    def warm_start(self) -> str:
        """Supervised fine-tuning on the SFT corpus; returns the directory of the result."""
        cfg = self.config
        self.phase = "warm start"
        model = ValueHeadModel.from_pretrained(cfg.policy.model).to(self.accelerator.device)
        losses = supervised_finetune(
            model,
            self.tokenizer,
            load_corpus(cfg.sft.corpus),
            cfg.sft,
            cfg.generation.template,
            seed=cfg.seed,
            progress=cfg.progress,
        )
        if self.accelerator.is_main_process:

            def write(directory: Path) -> None:
                model.save_pretrained(directory)
                self.tokenizer.save_pretrained(directory)

            self.run.save_sft(write, losses)
        self.accelerator.wait_for_everyone()
        return str(self.run.paths.sft)

    def setup(self, resume: str | Path | None = None) -> None:
        """Load the policy (from a checkpoint when resuming), the reference and the PPO trainer."""
        cfg = self.config
        # The image side loads before the seed is set or restored: building a model draws random
        # numbers, and a resumed run must draw the same ones as one that never stopped.
        self.renderer, self.reward, self.judges  # noqa: B018 (each property loads on first use)
        set_seed(cfg.seed)
        state = None
        self.run.prepare(resume=resume is not None, overwrite=self.overwrite, write=self.accelerator.is_main_process)
        self.accelerator.wait_for_everyone()
        if resume is not None:
            ckpt, state = rundir.load_checkpoint(resume)
            rundir.Run(ckpt.parent).check_resume(self.given_config.to_dict())
            self.start_record = state["start_model"]
            self.start_model = resolve_tiny(rundir.resolve_recorded(self.start_record, ckpt.parent))
            policy_source = str(ckpt)
            logger.info("Resuming from %s (step %d).", ckpt, state["step"])
        else:
            if cfg.sft.enabled:
                self.start_model = self.warm_start()
                self.start_record = rundir.portable(self.start_model, self.output_dir)
            policy_source = self.start_model
        self.phase = "loading"
        peft_config = cfg.policy.peft_config()
        from_ckpt_peft = resume is not None and (Path(policy_source) / ADAPTER_CONFIG_FILE).exists()
        policy = ValueHeadModel.from_pretrained(policy_source, peft_config=None if from_ckpt_peft else peft_config)
        if cfg.policy.gradient_checkpointing:
            policy.gradient_checkpointing_enable()
        self.ppo = self._policy_optimizer(policy)
        self.guard = RollbackGuard(self.ppo)
        self.generator = PromptGenerator(self.ppo.policy, self.tokenizer, cfg.generation)
        if state is not None:
            self.ppo.load_state_dict(state["ppo"])
            self.step = state["step"]
            self.history = state["history"]
            self.before = state.get("before")
            if state.get("baseline") is not None:
                self.baseline.load_state_dict(state["baseline"])
            set_rng_state(state["rng"])
        if self.accelerator.is_main_process:
            self.run.write_start(self.given_config, self.heldout, self.history)
        if cfg.trackers:
            flat = {k: v for k, v in flatten(cfg.to_dict(), sep="/").items() if isinstance(v, (int, float, str, bool))}
            self.accelerator.init_trackers("promptrl", config=flat)

    def _policy_optimizer(self, policy: ValueHeadModel) -> PPOTrainer:
        """The trainer of `config.algorithm` for `policy`, with a reference model only where the
        algorithm uses one (a LoRA policy's reference is itself with the adapter off)."""
        cfg = self.config
        uses_reference = cfg.algorithm == "ppo" or getattr(cfg, cfg.algorithm).beta != 0
        ref = None
        if uses_reference and not policy.is_peft_model:
            ref = ValueHeadModel.from_pretrained(self.start_model)
        if cfg.algorithm == "ppo":
            return PPOTrainer(policy, ref, self.tokenizer, config=cfg.ppo, accelerator=self.accelerator)
        settings = getattr(cfg, cfg.algorithm)
        if cfg.algorithm == "grpo" and settings.max_completion_length is None:
            settings = dataclasses.replace(settings, max_completion_length=cfg.generation.max_new_tokens)
        return ALGORITHMS[cfg.algorithm](
            policy,
            ref,
            self.tokenizer,
            config=cfg.ppo,
            settings=settings,
            group_size=cfg.samples_per_idea,
            accelerator=self.accelerator,
        )

    # -- one step ----------------------------------------------------------------------------
    def ideas_for_step(self, step: int) -> list[str]:
        """This process's ideas for `step`: consecutive slices of seeded shuffles of the ideas,
        each repeated `samples_per_idea` times."""
        n = len(self.ideas)
        repeat = self.config.samples_per_idea
        per_process = self.config.ppo.batch_size // repeat
        world = self.accelerator.num_processes
        start = (step * world + self.accelerator.process_index) * per_process
        out = []
        for k in range(start, start + per_process):
            epoch, pos = divmod(k, n)
            perm = torch.randperm(
                n, generator=torch.Generator().manual_seed(derive_seed(self.config.seed, "ideas", epoch))
            )
            out.extend([self.ideas[int(perm[pos])]] * repeat)
        return out

    def seeds_for(self, ideas: list[str]) -> list[int]:
        """Image seeds: one per run of equal consecutive ideas (its `samples_per_idea` prompts),
        so the samples of an idea differ only by their prompts."""
        groups = [i for i in range(len(ideas)) if i == 0 or ideas[i] != ideas[i - 1]]
        group_seeds = self.renderer.seeds_for(len(groups), [ideas[i] for i in groups])
        bounds = groups[1:] + [len(ideas)]
        return [seed for seed, start, end in zip(group_seeds, groups, bounds) for _ in range(end - start)]

    @property
    def records_while_sampling(self) -> bool:
        """Whether training samples with `record=True`, so the PPO step skips its no-grad pass
        over the policy: only where the recorded numbers are exactly what that pass computes
        (full-softmax sampling, no mixed precision)."""
        g, p = self.config.generation, self.config.ppo
        return g.top_k == 0 and g.top_p == 1.0 and p.mixed_precision == "no"

    def rollout_and_score(self, ideas: list[str], return_pil: bool = False, record: bool = False) -> ScoredRollout:
        """Generate prompts (`record`: and what PPO needs of the policy), render and score them."""
        watch = Stopwatch()
        with watch("time/generate"):
            rollout = self.generator(ideas, record=record)
        with watch("time/render"):
            render = self.renderer(rollout.prompts, ideas=ideas, seeds=self.seeds_for(ideas), return_pil=return_pil)
        with watch("time/score"):
            total, components = score(self.reward, render.images, render.prompts, ideas)
        return ScoredRollout(rollout, render, total, components, watch.times)

    def train_step(self) -> dict:
        """One PPO step on the next batch of ideas; returns its metrics. A failing reward raises
        before the update, so the model is unchanged."""
        cfg = self.config
        ideas = self.ideas_for_step(self.step)
        save_images = cfg.image_every > 0 and (self.step + 1) % cfg.image_every == 0
        batch = self.rollout_and_score(ideas, record=self.records_while_sampling)
        rollout, render = batch.rollout, batch.render
        scores = self.baseline.normalize(ideas, batch.total)
        watch = Stopwatch()
        with watch("time/optimize"):
            stats = self.guard.step(rollout.queries, rollout.responses, scores, rollout.recorded)
        self.step += 1
        metrics = {"step": self.step}
        for name, values in {"total": batch.total, **batch.components}.items():
            metrics[f"reward/{name}/mean"] = values.mean().item()
            metrics[f"reward/{name}/std"] = values.std().item() if len(values) > 1 else 0.0
        text = prompt_stats(rollout.prompts, np.asarray(render.truncated))
        metrics["prompt/truncation_rate"] = text["truncated_share"]
        metrics["prompt/words_mean"] = text["mean_words"]
        metrics["prompt/distinct_bigrams"] = text["distinct_2"]
        metrics.update(rollout.stats)
        metrics.update({k: v for k, v in stats.items() if isinstance(v, (int, float))})
        metrics.update(batch.times)
        metrics.update(watch.times)
        if save_images and self.accelerator.is_main_process:
            captions = [f"{r:.3f} | {p}" for r, p in zip(batch.total.tolist(), render.prompts)]
            grid = image_grid(to_pil(render.images), captions)
            save_image_atomically(grid, self.run.paths.image(self.step))
        return metrics

    # -- the loop ------------------------------------------------------------------------------
    def train(
        self,
        resume: str | Path | None = None,
        steps: int | None = None,
        callback: Callable[[dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[dict]:
        """Run until `config.steps` (or `steps` more) steps are done; returns the metrics history.

        `callback(metrics)` runs after every step; `should_stop()` ends the run early (with a
        checkpoint and the final artefacts). A stop asked for before the first step returns
        before any step, leaving the final artefacts unwritten. `phase` says where it is.
        """
        cfg = self.config
        stopped = should_stop or (lambda: False)
        if self.ppo is None:
            self.setup(resume)
        if self.before is None:
            self.phase = "sampling the start model"
            self.before = self.before_after_samples()
        if stopped():
            return self.history
        self.phase = "training"
        total = cfg.steps if steps is None else self.step + steps
        bar = tqdm(
            total=total, initial=self.step, desc="ppo", disable=not cfg.progress or not self.accelerator.is_main_process
        )
        while self.step < total:
            metrics = self.train_step()
            if self.heldout and cfg.eval.every and self.step % cfg.eval.every == 0:
                metrics.update(self.judge())
            self.history.append(metrics)
            self._log(metrics)
            bar.update(1)
            postfix = {"reward": f"{metrics['reward/total/mean']:.3f}"}
            if "objective/kl" in metrics:  # GRPO and RLOO without a KL term run no reference
                postfix["kl"] = f"{metrics['objective/kl']:.2f}"
            bar.set_postfix(postfix)
            if callback is not None:
                callback(metrics)
            stop = stopped()
            if (cfg.save_every > 0 and self.step % cfg.save_every == 0) or stop or self.step == total:
                self.save_checkpoint()
            if stop:
                break
        bar.close()
        self.finish()
        return self.history

    def _log(self, metrics: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        self.run.append_metrics(metrics)
        if self.config.trackers:
            self.accelerator.log(metrics, step=metrics["step"])

    # -- checkpoints and final artefacts -------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        """Write `checkpoint-<step>` atomically (temp dir, then rename); keep the newest few."""
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return None
        state = {
            "step": self.step,
            "ppo": self.ppo.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "before": self.before,
            "start_model": self.start_record,
            "baseline": self.baseline.state_dict(),
        }
        return self.run.save_checkpoint(self.step, self._save_model, state, self.config.keep_checkpoints)

    def _save_model(self, directory: Path) -> None:
        """Policy and tokenizer in `save_pretrained` format, plus `promptrl.json` naming the
        starting model (what the app compares against)."""
        # GRPO and RLOO train no value head: a saved one would pretend to hold values
        self.ppo.policy.save_pretrained(directory, value_head=self.config.algorithm == "ppo")
        self.tokenizer.save_pretrained(directory)
        self.run.write_model_info(directory, self.start_record, self.step, self.config.preset)

    @torch.no_grad()
    def before_after_samples(self, ideas: list[str] | None = None) -> list[dict]:
        """Prompts, rewards and images for fixed ideas (default: the first `eval_ideas`), sampled
        with a fixed seed that leaves the training RNG untouched: `before` and `after` are these
        for the start model and the final one."""
        ideas = ideas or self.ideas[: self.config.eval_ideas]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.config.seed, "before-after"))
            batch = self.rollout_and_score(ideas)
        return [
            {"idea": i, "prompt": p, "reward": r, "image": img}
            for i, p, r, img in zip(ideas, batch.render.prompts, batch.total.tolist(), to_pil(batch.render.images))
        ]

    def _heldout_samples(self, base: bool = False):
        """The held-out ideas sampled, rendered and scored (reward and judges) as `promptrl eval`
        does, by the policy or (`base`) the start model; the training RNG is left alone."""
        e = self.config.eval
        if not base:
            generator, context = self.generator, contextlib.nullcontext()
        elif self.ppo.policy.is_peft_model:  # LoRA: the start model is the policy with its adapters off
            generator, context = self.generator, self.ppo.policy.disabled_adapter()
        else:  # the reference; GRPO and RLOO without a KL term hold none, so it loads now
            if self._start_generator is None:
                start = self.ppo.ref_model
                if start is None:
                    start = ValueHeadModel.from_pretrained(self.start_model).to(self.accelerator.device)
                self._start_generator = PromptGenerator(start.eval(), self.tokenizer, self.config.generation)
            generator, context = self._start_generator, contextlib.nullcontext()
        with context:
            return sample_and_score(generator, self.renderer, self.reward, self.heldout, e.samples, e.seed, self.judges)

    def judge(self) -> dict:
        """Held-out metrics: mean of every score column (`judge/<name>/mean` for the judges,
        `heldout/<name>/mean` for the training reward), so reward hacking shows as the training
        reward rising while the judge does not."""
        if not self.accelerator.is_main_process:
            return {}
        scores = self._heldout_samples().scores
        out = {
            (f"{name}/mean" if name.startswith("judge/") else f"heldout/{name}/mean"): float(v.mean())
            for name, v in scores.items()
        }
        if "heldout/total/mean" not in out:  # a one-term reward: its term is the total
            out["heldout/total/mean"] = out[f"heldout/{next(iter(scores))}/mean"]
        return out

    def heldout_comparison(self):
        """`eval.EvalResult` of the start model against the policy on the held-out ideas."""
        e = self.config.eval
        base, tuned = self._heldout_samples(base=True), self._heldout_samples()
        names = {"base": str(self.start_model), "tuned": str(self.run.paths.model)}
        return compare_samples(base, tuned, self.heldout, e.seed, e.bootstrap, names)

    def finish(self) -> None:
        """Final model, report.png, before/after table and grid, held-out comparison."""
        self.phase = "finishing"
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            self.phase = "finished"
            return
        self.after = self.before_after_samples([b["idea"] for b in self.before])
        paths = self.run.paths
        self.run.save_model(self._save_model)
        if self.history:
            plot_report(self.history, paths.report)
        write_before_after(self.before, self.after, paths.samples, paths.before_after)
        if self.heldout:
            logger.info("Comparing the start model with the tuned one on %d held-out ideas", len(self.heldout))
            self.heldout_eval = self.heldout_comparison()
            self.heldout_eval.save(paths.eval)
            with open(paths.samples, "a") as f:
                f.write("\n## Held-out ideas (never trained on): start model against final model\n\n")
                f.write(self.heldout_eval.markdown().split("\n", 2)[2])  # without its title line
            logger.info(
                "Held-out comparison (%s):\n%s",
                paths.eval / MARKDOWN_FILE,
                self.heldout_eval.summary(),
            )
        if self.config.trackers:
            self.accelerator.end_training()
        self.phase = "finished"
