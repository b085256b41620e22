"""Seconds per PPO step by stage (generate, render, score, optimise) of the whole image loop.

    python bench/e2e.py                          # the tiny preset on this machine
    python bench/e2e.py --gpu                    # the bloom-560m preset: 64 samples at 512x512 on CUDA
    python bench/e2e.py --real --device cpu --ideas 4 --size 64 --steps 1    # the same shapes on a CPU
    python bench/e2e.py --family flux --ideas 4 --threads 1  # the tiny preset rendering with FLUX.1, 64x64
    python bench/e2e.py --family sd3 --gpu       # the sd3.5-medium preset on CUDA

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

`--family F` (sd, sdxl, sd3, flux, pixart, sana) renders with that image family, loaded by its
real hub name (`FAMILY_REPOS` in promptrl/standins/families.py; sd is stabilityai/sd-turbo)
from a stand-in hub that also holds its TAESD decoder. Without `--real`: the tiny preset (tiny
policy and scorer) with the render settings of the family's preset (`PRESET_OF_FAMILY`: steps,
guidance, chunk size, `max_sequence_length`) at `--size` pixels (default 64); with `--real` or
`--gpu`: that preset itself (e.g. `flux-schnell`), at its own size unless `--size` is given.
The family stand-ins are tiny random-init models whatever the hub's size (there is no
full-size family stand-in; only sd-turbo is full-size under `--real`), so the figures time
promptrl's path around an image model, not a real model's denoising. After the stages and the
peak memory (CUDA's peak allocated, else peak RSS) come the `Renderer` beside one plain
pipeline call on the same batch and seeds, passing what the renderer passes
(`Renderer.call_options`), with how far their images differ; and, for families with a TAESD
decoder (sd, sdxl, sd3, flux), the same batch decoded with `render.vae: taesd` beside `full`.
On a shared CPU, `--threads 1` keeps the figures steady.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
PRESET_OF_FAMILY = {
    "sd": "bloom-560m",
    "sdxl": "sdxl-turbo",
    "sd3": "sd3.5-medium",
    "flux": "flux-schnell",
    "pixart": "pixart-sigma",
    "sana": "sana-600m",
}
"""Image family -> the preset that renders with it (whose render settings `--family` takes)."""
FAMILY_RENDER_KEYS = ("pipeline", "num_inference_steps", "guidance_scale", "chunk_size", "max_sequence_length")
"""What `--family` takes from the family preset into the tiny one (the size comes from `--size`)."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="--real on CUDA (fails without a GPU)")
    parser.add_argument("--real", action="store_true", help="the bloom-560m preset on a full-size stand-in hub")
    parser.add_argument("--family", choices=PRESET_OF_FAMILY, default=None, help="render with this image family")
    parser.add_argument("--device", default=None, help="force the device (e.g. cpu)")
    parser.add_argument("--ideas", type=int, default=None, help="samples per step (default 32 tiny, 64 real)")
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="image size with --real or --family (default 512; --family: 64, or with --real its preset's)",
    )
    parser.add_argument("--steps", type=int, default=3, help="PPO steps; the first is warm-up")
    parser.add_argument("--hub", default=None, help="where to build (or find) the stand-in hub; default: a temp dir")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the render comparison")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1: steadier on a shared CPU)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args()


def build_hub(hub: Path, size: str, cuda: bool, family: str | None) -> None:
    """The stand-in hub, in a child process. CUDA loads sd-turbo's fp16 files, a CPU the
    full-precision ones: only those are written. `family` adds that family (tiny at any size)."""
    variants = ("fp16",) if cuda else ("",)
    families = (family,) if family else ()
    code = (
        "from promptrl.standins.hub import build_standin_hub; "
        f"build_standin_hub({str(hub)!r}, {size!r}, sd_variants={variants!r}, families={families!r})"
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    what = f"{size} size" + (f", with the {family} family" if family else "")
    print(f"stand-in hub ({what}) ready in {time.perf_counter() - t0:.0f} s: {hub}")


def family_render_overrides(family: str, size: int | None) -> list[str]:
    """The tiny preset's `render` overrides that render as `family`'s preset does, at `size`."""
    from promptrl.config import get_preset

    render = get_preset(PRESET_OF_FAMILY[family]).render
    overrides = [
        f"render.{key}={getattr(render, key)}" for key in FAMILY_RENDER_KEYS if getattr(render, key) is not None
    ]
    size = size or 64
    return overrides + [f"render.height={size}", f"render.width={size}"]


def one_chunk(renderer, ideas: list[str], prompts: list[str]) -> tuple[list[str], list[int]]:
    """The first `render.chunk_size` prompts as the renderer renders them (cut to its token
    limit, so a plain call renders the same) and their seeds."""
    n = min(renderer.config.chunk_size, len(prompts))
    return renderer.fit_prompts(prompts[:n])[0], renderer.seeds_for(n, ideas[:n])


def render_comparison(renderer, prompts: list[str], seeds: list[int], repeats: int, cuda: bool, family: bool) -> None:
    """Renderer vs one plain pipeline call (passing what the renderer passes) vs one call per
    prompt, on one chunk. `family`: no one-by-one loop; how far the images differ instead."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from render import timed  # bench/render.py: alternating rounds, medians

    pipe, c, n = renderer.pipeline, renderer.config, len(prompts)
    call = renderer.call_options(n)

    def plain():
        return pipe(prompt=prompts, generator=[torch.Generator("cpu").manual_seed(s) for s in seeds], **call).images

    def one_by_one():
        one = renderer.call_options(1)
        return [
            pipe(prompt=p, generator=torch.Generator("cpu").manual_seed(s), **one).images
            for p, s in zip(prompts, seeds)
        ]

    candidates = {"renderer": lambda: renderer(prompts, seeds=seeds), "plain call": plain}
    if not family:
        candidates["one by one"] = one_by_one
    results = timed(candidates, repeats, cuda)
    base = results["plain call"][0]
    print(
        f"render, {n} prompts ({c.height}x{c.width}, {c.num_inference_steps} step(s), {pipe.dtype}), "
        f"median of {repeats}:"
    )
    for name, (wall, _) in results.items():
        print(f"  {name:10s} {wall:8.3f} s  ({wall / base:5.2f} x plain call)")
    if family:
        ours, theirs = renderer(prompts, seeds=seeds).images, plain().to(renderer.device, torch.float32)
        print(f"  same images as the plain call: largest difference {(ours - theirs).abs().max().item():.2g}")


def decode_clock(vae, seconds: list[float], cuda: bool) -> None:
    """Make `vae.decode` append the seconds it takes to `seconds` (undo with `del vae.decode`)."""
    import torch

    decode = vae.decode

    def timed_decode(*args, **kwargs):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = decode(*args, **kwargs)
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        return out

    vae.decode = timed_decode


def preview_comparison(renderer, prompts: list[str], seeds: list[int], repeats: int, cuda: bool) -> None:
    """The same batch and seeds rendered with `render.vae: taesd` and `full`: the decoders'
    seconds (same latents: the denoising is identical) and the whole render's."""
    sys.path.insert(0, str(Path(__file__).parent))
    from render import timed

    from promptrl.errors import UsageError
    from promptrl.rendering import Renderer

    family = renderer.family
    if family.preview_decoder is None:
        print(f"preview decoder: no TAESD decoder for {family.title} latents")
        return
    try:  # the training pipeline, with the family's TAESD beside its VAE
        preview = Renderer(dataclasses.replace(renderer.config, vae="taesd"), pipeline=renderer.pipeline)
    except UsageError as err:
        print(f"preview decoder: {family.preview_decoder} does not fit this stand-in: {err}")
        return
    decodes = {"full": [], "taesd": []}
    decode_clock(preview.full_vae, decodes["full"], cuda)
    decode_clock(preview.preview_vae, decodes["taesd"], cuda)
    try:
        results = timed(
            {
                "full": lambda: preview(prompts, seeds=seeds, preview=False),
                "taesd": lambda: preview(prompts, seeds=seeds, preview=True),
            },
            repeats,
            cuda,
        )
    finally:
        del preview.full_vae.decode, preview.preview_vae.decode

    def per_render(seconds: list[float]) -> float:  # median over the timed renders of their decodes' sum
        calls = len(seconds) // (repeats + 1)
        return statistics.median(sum(seconds[i * calls : (i + 1) * calls]) for i in range(1, repeats + 1))

    full, taesd = per_render(decodes["full"]), per_render(decodes["taesd"])
    gap = (
        preview(prompts, seeds=seeds, preview=True).images - preview(prompts, seeds=seeds, preview=False).images
    ).abs()
    print(
        f"preview decoder ({preview.config.preview_decoder or family.preview_decoder}) beside the full VAE, "
        f"{len(prompts)} prompts, same seeds, median of {repeats}:"
    )
    print(f"  decode  full {full:8.3f} s   taesd {taesd:8.3f} s   speed-up {full / taesd:5.2f} x")
    print(
        f"  render  full {results['full'][0]:8.3f} s   taesd {results['taesd'][0]:8.3f} s   "
        f"speed-up {results['full'][0] / results['taesd'][0]:5.2f} x"
    )
    print(
        f"  preview vs full decode: mean difference {gap.mean().item():.2g}, largest {gap.max().item():.2g} (pixels in [0, 1])"
    )
    print(
        "  on stand-ins (random weights) the agreement of preview and full decodes only shows that "
        "the path works, not image quality;"
    )
    print("  nor is the speed-up the real one: the stand-ins' VAEs are shrunk, their TAESDs real-size")


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
    if real or args.family:
        hub = Path(args.hub) if args.hub else Path(tempfile.mkdtemp(prefix="promptrl-standin-"))
        # huggingface_hub reads these when it is imported: before anything imports promptrl.
        os.environ.update(HF_HOME=str(hub), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")

    import torch

    from promptrl.config import load_config
    from promptrl.trainer import PromptTrainer

    if args.threads:
        torch.set_num_threads(args.threads)

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
            "eval.heldout=0",  # no held-out comparison after the timed steps
            f"steps={args.steps}",
            "sft.enabled=false",
        ]
        if hub is not None:
            built = hub / "STANDIN"
            if not built.exists():
                build_hub(hub, "full" if real else "small", cuda, args.family)
            elif args.family and args.family not in json.loads(built.read_text()).get("families", []):
                sys.exit(f"--hub {hub} was built without the {args.family} family; name a fresh directory")
        if real:
            n = args.ideas or 64
            size = args.size or (None if args.family else 512)
            if size:
                overrides += [f"render.height={size}", f"render.width={size}"]
            overrides += [
                f"ppo.batch_size={n}",
                f"ppo.mini_batch_size={min(8, n)}",
                f"ppo.forward_batch_size={min(8, n)}",
            ]
            preset = PRESET_OF_FAMILY[args.family] if args.family else "bloom-560m"
        else:
            n = args.ideas or 32
            overrides += [
                f"ppo.batch_size={n}",
                f"ppo.forward_batch_size={n}",
                f"ppo.mini_batch_size={min(16, n)}",
            ]
            if args.family:
                overrides += family_render_overrides(args.family, args.size)
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
        r = config.render
        what = f"{preset} preset"
        if args.family:
            kind = "full-size" if real and args.family == "sd" else "tiny"  # family stand-ins are tiny at any size
            what = f"{args.family} family ({r.pipeline}: a {kind} random-init stand-in) on the {preset} preset"
        print(
            f"{what}, {n} samples per step, {r.height}x{r.width}, "
            f"{r.num_inference_steps} denoising step(s){f', guidance {r.guidance_scale:g}' if args.family else ''}, "
            f"device {trainer.accelerator.device}, "
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
        if real or args.family:
            renderer = trainer.renderer.renderer if cuda else trainer.renderer
            ideas = trainer.ideas_for_step(0)
            prompts, seeds = one_chunk(renderer, ideas, trainer.generator(ideas).prompts)
            render_comparison(renderer, prompts, seeds, args.repeats, cuda, family=bool(args.family))
            if args.family:
                preview_comparison(renderer, prompts, seeds, args.repeats, cuda)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        if hub is not None and not args.hub:
            shutil.rmtree(hub, ignore_errors=True)


if __name__ == "__main__":
    main()
