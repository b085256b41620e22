"""Seconds per PPO step by stage (generate, render, score, optimise) of the whole image loop.

    python bench/e2e.py                          # the tiny preset on this machine
    python bench/e2e.py --gpu                    # the bloom-560m preset: 64 samples at 512x512 on CUDA
    python bench/e2e.py --real --device cpu --ideas 4 --size 64 --steps 1    # the same shapes on a CPU

`--real` (implied by `--gpu`) writes a full-size stand-in hub (promptrl/standins/hub.py: random
weights, the real architectures and file formats of bigscience/bloom-560m, stabilityai/sd-turbo,
open_clip's ViT-L-14 `openai` and the aesthetic predictor) and runs the unchanged `bloom-560m`
preset against it offline, so every model loads through the path a Colab user's does (fp16
sd-turbo files and fp16 scoring on CUDA, LoRA on BLOOM's real module names). Only the batch
(`--ideas`, samples per step), the image size and the step count are overridden.

It prints the median seconds per stage and per step after the first (warm-up) step, peak GPU
memory (CUDA) and the process's peak RSS; then, on one batch of `render.chunk_size` prompts
with per-sample seeds, promptrl's `Renderer` beside one plain `StableDiffusionPipeline.__call__`
on the same batch and beside a one-prompt-per-call loop. The stand-in hub is built in a child
process (its peak memory is not the loop's) into `--hub` (kept and reused) or a temp dir.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("time/generate", "time/render", "time/score", "time/optimize")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="--real on CUDA (fails without a GPU)")
    parser.add_argument("--real", action="store_true", help="the bloom-560m preset on a full-size stand-in hub")
    parser.add_argument("--device", default=None, help="force the device (e.g. cpu)")
    parser.add_argument("--ideas", type=int, default=None, help="samples per step (default 32 tiny, 64 real)")
    parser.add_argument("--size", type=int, default=512, help="image size with --real")
    parser.add_argument("--steps", type=int, default=3, help="PPO steps; the first is warm-up")
    parser.add_argument("--hub", default=None, help="where to build (or find) the stand-in hub; default: a temp dir")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the render comparison")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args()


def build_hub(hub: Path, cuda: bool) -> None:
    """The full-size stand-in hub, in a child process. CUDA loads sd-turbo's fp16 files, a CPU
    the full-precision ones: only those are written."""
    variants = ("fp16",) if cuda else ("",)
    code = f"from promptrl.standins.hub import build_standin_hub; build_standin_hub({str(hub)!r}, 'full', sd_variants={variants!r})"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    print(f"stand-in hub (full size) ready in {time.perf_counter() - t0:.0f} s: {hub}")


def render_comparison(renderer, ideas: list[str], prompts: list[str], repeats: int, cuda: bool) -> None:
    """Renderer vs one plain pipeline call vs one call per prompt, on one chunk of prompts."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from render import timed  # bench/render.py: alternating rounds, medians

    pipe, c = renderer.pipeline, renderer.config
    n = min(c.chunk_size, len(prompts))
    ideas, prompts = ideas[:n], prompts[:n]
    seeds = renderer.seeds_for(n, ideas)
    call = dict(
        num_inference_steps=c.num_inference_steps,
        guidance_scale=c.guidance_scale,
        height=c.height,
        width=c.width,
        output_type="pt",
    )

    def plain():
        return pipe(prompt=prompts, generator=[torch.Generator("cpu").manual_seed(s) for s in seeds], **call).images

    def one_by_one():
        return [
            pipe(prompt=p, generator=torch.Generator("cpu").manual_seed(s), **call).images
            for p, s in zip(prompts, seeds)
        ]

    results = timed(
        {
            "renderer": lambda: renderer(prompts, seeds=seeds),
            "plain call": plain,
            "one by one": one_by_one,
        },
        repeats,
        cuda,
    )
    base = results["plain call"][0]
    print(
        f"render, {n} prompts ({c.height}x{c.width}, {c.num_inference_steps} step(s), {pipe.dtype}), "
        f"median of {repeats}:"
    )
    for name, (wall, _) in results.items():
        print(f"  {name:10s} {wall:8.3f} s  ({wall / base:5.2f} x plain call)")


class SyncedRenderer:
    """A renderer that waits for the GPU before returning. The trainer's stage clocks read the
    host's time; rendering hands back images still being computed (decoding prompts and
    reading rewards synchronise the other stages), so without this, render time lands in score."""

    def __init__(self, renderer):
        self.renderer = renderer

    def __getattr__(self, name):
        return getattr(self.renderer, name)

    def __call__(self, *args, **kwargs):
        import torch

        out = self.renderer(*args, **kwargs)
        torch.cuda.synchronize()
        return out


def main() -> None:
    args = parse_args()
    real = args.gpu or args.real
    hub = None
    if real:
        hub = Path(args.hub) if args.hub else Path(tempfile.mkdtemp(prefix="promptrl-standin-"))
        # huggingface_hub reads these when it is imported: before anything imports promptrl.
        os.environ.update(HF_HOME=str(hub), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")

    import torch

    from promptrl.config import load_config
    from promptrl.trainer import PromptTrainer

    cuda = torch.cuda.is_available() and args.device in (None, "cuda")
    if args.gpu and not cuda:
        sys.exit("--gpu needs a CUDA device; use --real --device cpu for the same shapes on a CPU")
    run_dir = Path(tempfile.mkdtemp(prefix="promptrl-e2e-"))
    try:
        overrides = [
            f"output_dir={run_dir}",
            "trackers=[]",
            "progress=false",
            "save_every=0",
            "image_every=0",
            "eval_ideas=1",
            f"steps={args.steps}",
            "sft.enabled=false",
        ]
        if real:
            if not (hub / "STANDIN").exists():
                build_hub(hub, cuda)
            n = args.ideas or 64
            overrides += [
                f"render.height={args.size}",
                f"render.width={args.size}",
                f"ppo.batch_size={n}",
                f"ppo.mini_batch_size={min(8, n)}",
                f"ppo.forward_batch_size={min(8, n)}",
            ]
            preset = "bloom-560m"
        else:
            n = args.ideas or 32
            overrides += [
                f"ppo.batch_size={n}",
                f"ppo.forward_batch_size={n}",
                f"ppo.mini_batch_size={min(16, n)}",
            ]
            preset = "tiny"
        if args.device:
            overrides.append(f"render.device={args.device}")
        config = load_config(preset, None, overrides + args.overrides)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        trainer = PromptTrainer(config)
        if cuda:
            trainer.renderer = SyncedRenderer(trainer.renderer)
        step_cpu = []  # process CPU seconds per step: steadier than wall time on a shared CPU
        train_step = trainer.train_step

        def cpu_timed_step():
            start = time.process_time()
            metrics = train_step()
            step_cpu.append(time.process_time() - start)
            return metrics

        trainer.train_step = cpu_timed_step
        trainer.setup()
        loaded = time.perf_counter() - t0
        history = trainer.train()

        rows = history[1:] or history
        print(
            f"{preset} preset, {n} samples per step, {config.render.height}x{config.render.width}, "
            f"{config.render.num_inference_steps} denoising step(s), device {trainer.accelerator.device}, "
            f"{torch.get_num_threads()} torch threads; models loaded in {loaded:.1f} s; "
            f"median over {len(rows)} step(s){' after warm-up' if len(history) > 1 else ' (no warm-up)'}:"
        )
        total = 0.0
        for key in STAGES:
            t = statistics.median(h[key] for h in rows)
            total += t
            print(f"  {key[5:]:9s} {t:8.3f} s")
        print(f"  {'step':9s} {total:8.3f} s   (process CPU time {statistics.median(step_cpu[-len(rows) :]):.3f} s)")
        if cuda:
            print(
                f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated, "
                f"{torch.cuda.max_memory_reserved() / 2**30:.2f} GiB reserved"
            )
        print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
        if real:
            ideas = trainer.ideas_for_step(0)
            prompts = trainer.generator(ideas).prompts
            render_comparison(
                trainer.renderer.renderer if cuda else trainer.renderer,
                ideas,
                prompts,
                args.repeats,
                cuda,
            )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        if real and not args.hub:
            shutil.rmtree(hub, ignore_errors=True)


if __name__ == "__main__":
    main()
