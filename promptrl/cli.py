"""Command line: `promptrl {train,sft,generate,render,score,eval,app}` (also `python -m promptrl`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from . import logs
from .errors import PromptrlError, UsageError
from .presets import DEFAULT_PRESET, PRESETS, add_config_arguments

logger = logging.getLogger("promptrl")


def _config_args(p: argparse.ArgumentParser) -> None:
    add_config_arguments(
        p,
        f"named config: {', '.join(PRESETS)} (default: {DEFAULT_PRESET})",
        "YAML file of config values (on top of the preset it names, else of the full-size defaults)",
    )
    p.add_argument("--output-dir", default=None, help="where the run writes (same as --set output_dir=...)")


def _load(args, run_dir: str | None = None):
    """The config from --preset/--config/--set; when resuming with neither --preset nor --config,
    the run's own config.yaml is the base."""
    from .config import load_config

    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    config_file = args.config
    if run_dir is not None and not args.preset and not config_file:
        from .rundir import Run

        run = Run.locate(run_dir)
        if run.root is None:
            raise UsageError(f"{run_dir} is not a promptrl run directory or checkpoint; pass --preset or --config.")
        config_file = str(run.paths.config)
        if not args.output_dir:
            overrides.append(f"output_dir={run.root}")
    return load_config(args.preset, config_file, overrides)


def cmd_train(args) -> None:
    from .eval.stats import MARKDOWN_FILE
    from .trainer import PromptTrainer

    config = _load(args, args.resume)
    logs.log_run(config.output_dir, resume=args.resume is not None, overwrite=args.overwrite)
    trainer = PromptTrainer(config, overwrite=args.overwrite)
    history = trainer.train(resume=args.resume)
    third = max(1, len(history) // 3)
    first = sum(h["reward/total/mean"] for h in history[:third]) / third
    last = sum(h["reward/total/mean"] for h in history[-third:]) / third
    paths = trainer.run.paths
    print(f"Trained {trainer.step} steps; mean reward {first:.4f} (first third) -> {last:.4f} (last third).")
    print(f"Model: {paths.model}  report: {paths.report}  samples: {paths.samples}")
    if trainer.heldout_eval is not None:
        print(f"Held-out comparison with the start model: {paths.eval / MARKDOWN_FILE}")


def cmd_sft(args) -> None:
    from .trainer import PromptTrainer

    config = _load(args)
    if args.corpus:
        from dataclasses import replace

        config = replace(config, sft=replace(config.sft, corpus=args.corpus))
    trainer = PromptTrainer(config)
    out = trainer.warm_start()
    print(f"Supervised warm start saved to {out}")


def cmd_generate(args) -> None:
    import torch

    from .ideas import load_ideas
    from .rundir import Run

    load_ideas(args.ideas)  # the same limits as training: no blank or overlong ideas
    run = Run.locate(args.model)
    # The sampling the model was trained with, each setting given on the command line on top.
    given = {
        "template": args.template,
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
    }
    settings = dataclasses.replace(run.config.generation, **{k: v for k, v in given.items() if v is not None})
    gen = run.load_generator(generation=settings)
    torch.manual_seed(args.seed)
    ideas = [idea for idea in args.ideas for _ in range(args.num)]
    for idea, prompt in zip(ideas, gen(ideas).prompts):
        print(json.dumps({"idea": idea, "prompt": prompt}) if args.json else f"{idea} -> {prompt}")


def _renderer(args, render):
    """A `Renderer` of the `RenderConfig` `render` with the render flags given on top."""
    from dataclasses import replace

    from .rendering import Renderer
    from .standins.tiny import resolve_tiny

    flags = {
        "pipeline": args.pipeline,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "height": args.size,
        "width": args.size,
        "seed": args.seed,
    }
    return Renderer(resolve_tiny(replace(render, **{k: v for k, v in flags.items() if v is not None})))


def cmd_render(args) -> None:
    from .config import get_preset
    from .rendering import to_pil

    out = _renderer(args, get_preset(args.preset).render)(args.prompts)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for i, (img, seed) in enumerate(zip(to_pil(out.images), out.seeds)):
        path = Path(args.out) / f"{i:03d}_seed{seed}.png"
        img.save(path)
        print(path)


def cmd_score(args) -> None:
    from .config import load_config
    from .rewards import reward_from_config, score
    from .standins.tiny import resolve_tiny

    config = resolve_tiny(load_config(args.preset, args.config, args.overrides))
    images = _renderer(args, config.render)(args.prompts, ideas=args.ideas or args.prompts)
    reward = reward_from_config(config.rewards)
    total, comps = score(reward, images.images, images.prompts, args.ideas or args.prompts)
    for i, prompt in enumerate(images.prompts):
        row = {"prompt": prompt, "reward": round(total[i].item(), 5)}
        row.update({k: round(v[i].item(), 5) for k, v in comps.items()})
        print(json.dumps(row))


def cmd_eval(args) -> None:
    from .eval.evaluate import evaluate_model
    from .eval.stats import GRID_FILE, JSON_FILE, MARKDOWN_FILE

    result, out = evaluate_model(
        args.model,
        base=args.base,
        ideas=args.ideas,
        samples=args.samples,
        rewards=args.rewards,
        judges=args.judges,
        out=args.out,
        preset=args.preset,
        config_file=args.config,
        overrides=args.overrides,
    )
    print(result.summary())
    print(f"Wrote {out / MARKDOWN_FILE}, {out / JSON_FILE} and {out / GRID_FILE}")


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="run directory, its model/ or checkpoint, or any model directory")
    p.add_argument("--base", default=None, help="model to compare against (default: the run's start model)")
    p.add_argument("--ideas", default=None, help="text file of ideas (default: the run's held-out ideas)")
    p.add_argument("--samples", type=int, default=None, help="prompts per idea and model (default: eval.samples)")
    p.add_argument(
        "--rewards",
        nargs="+",
        default=None,
        metavar="TYPE",
        help="score with these reward types instead of the run's reward (aesthetic similarity pickscore hps penalty)",
    )
    p.add_argument("--judges", nargs="+", default=None, metavar="TYPE", help="extra judges besides eval.judges")
    p.add_argument("--out", default=None, help="output folder (default: <run>/eval)")
    add_config_arguments(
        p,
        "settings from a preset instead of the run's config.yaml",
        "settings from a YAML file instead of the run's config.yaml",
        example="eval.seed=1",
    )


def _render_args(p: argparse.ArgumentParser) -> None:
    """The render flags; one not given keeps the preset's value."""
    default = "(default: the preset's)"

    p.add_argument("prompts", nargs="+", help="prompts to render")
    p.add_argument(
        "--pipeline",
        default=None,
        help=f"diffusers pipeline: hub name, local dir, or tiny:pipeline {default}",
    )
    p.add_argument("--steps", type=int, default=None, help=f"inference steps {default}")
    p.add_argument("--guidance", type=float, default=None, help=f"guidance scale {default}")
    p.add_argument("--size", type=int, default=None, help=f"image height and width {default}")
    p.add_argument("--seed", type=int, default=None, help=f"base seed {default}")


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(
        prog="promptrl", description="PPO fine-tuning of a Stable Diffusion prompt generator."
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the details too: debug lines, library logs and warnings, loading bars",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="run PPO on image rewards (SFT warm start first if the config enables it)")
    _config_args(p)
    p.add_argument(
        "--resume",
        default=None,
        help="run directory or checkpoint to continue from (its "
        "config.yaml is the config unless --preset/--config are given)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the output dir")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sft", help="supervised warm start of the generator on a prompt corpus")
    _config_args(p)
    p.add_argument("--corpus", default=None, help="text file of prompts or idea<TAB>prompt lines")
    p.set_defaults(func=cmd_sft)

    p = sub.add_parser("generate", help="expand ideas into prompts with a trained generator")
    p.add_argument("ideas", nargs="+", help="short ideas, e.g. 'a lighthouse in a storm'")
    p.add_argument("--model", required=True, help="directory written by save_pretrained (e.g. runs/tiny/model)")
    p.add_argument(
        "--template",
        default=None,
        help="query template with {idea} (default: the one the model's run recorded, else its preset's)",
    )
    p.add_argument("--num", type=int, default=1, help="prompts per idea")
    recorded = "(default: what the model's run sampled with, else its preset's)"
    p.add_argument("--max-new-tokens", type=int, default=None, help=f"longest prompt in tokens {recorded}")
    p.add_argument("--temperature", type=float, default=None, help=f"sampling temperature {recorded}")
    p.add_argument("--top-p", type=float, default=None, help=f"nucleus sampling mass {recorded}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("render", help="render prompts with a diffusers pipeline")
    _render_args(p)
    p.add_argument(
        "--preset", default=DEFAULT_PRESET, help=f"preset whose render settings to use (default: {DEFAULT_PRESET})"
    )
    p.add_argument("--out", default="renders", help="output folder")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("score", help="render prompts and print each reward component")
    _render_args(p)
    p.add_argument("--ideas", nargs="*", default=None, help="ideas for the similarity reward (default: the prompts)")
    add_config_arguments(
        p,
        f"preset whose rewards and render settings to use (default: {DEFAULT_PRESET})",
        "YAML file of settings (on top of the preset it names, else of the full-size defaults)",
        example="rewards.clip_model=ViT-B-32",
    )
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "eval", help="compare a tuned generator with its start on held-out ideas (paired, bootstrap CIs)"
    )
    _eval_args(p)
    p.set_defaults(func=cmd_eval)

    from .prefs.commands import add_prefs_parser

    add_prefs_parser(sub)

    sub.add_parser("app", help="serve the Gradio app (see `promptrl app --help`)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["app"]:  # the app parses its own flags (--model, --port, --share, ...)
        from .app import main as app_main

        app_main(argv[1:])
        return 0
    args = build_parser().parse_args(argv)
    error = None
    with logs.configure(verbose=args.verbose):
        try:
            args.func(args)
        except PromptrlError as err:  # refused on purpose, with a message that says what to do; others are bugs
            if args.verbose:
                raise
            logger.debug("promptrl %s failed", args.command, exc_info=True)  # the traceback, for the log file
            error = err
    if error is not None:  # after the log's last words: the error is the line to read
        print(f"promptrl {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
