"""Seconds to render one batch: promptrl's Renderer against the plain diffusers calls.

Three ways to render the same N prompts with the same per-sample seeds:

- renderer: `Renderer(prompts, ideas)` (token-limit check, idea seeds, chunks);
- plain batch: `pipeline(prompt=prompts, generator=[one per prompt], output_type="pt")`,
  the fastest diffusers call; the renderer should be within 5% of it;
- one by one: one `pipeline(prompt=p)` call per prompt, as Promptist renders.

Each is warmed up once, then timed `--repeats` times, taking turns; the median is
reported.

Usage: python bench/render.py [--pipeline PATH_OR_HUB_NAME] [--gpu] [-n 16] [--repeats 5]
                              [--threads 1]
       (default pipeline: the tiny one, built on first use)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from promptrl.rendering import RenderConfig, Renderer
from promptrl.standins.tiny import build_tiny_pipeline

IDEAS = [
    "a lighthouse in a storm",
    "an old fox reading by candlelight",
    "a misty pine forest at dawn",
    "a desert canyon at sunset",
    "a frozen lake under northern lights",
    "a steampunk airship over a city",
    "a bowl of ramen on a rainy night",
    "a cat astronaut floating in space",
]
STYLE = ", highly detailed, dramatic lighting, oil painting"


def timed(fns: dict, repeats: int, cuda: bool) -> dict[str, tuple[float, float]]:
    """Median (wall, process CPU) seconds of each `fn()` over `repeats` rounds, after one
    warm-up round.

    The candidates take turns within each round, so load from other processes hits them
    alike; on a shared CPU the process CPU time is the steadier figure.
    """
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            if cuda:
                torch.cuda.synchronize()
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            if cuda:
                torch.cuda.synchronize()
            if round_ > 0:
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", default=None, help="hub name or local dir (default: tiny)")
    parser.add_argument("--gpu", action="store_true", help="render on CUDA in fp16")
    parser.add_argument("-n", type=int, default=16, help="prompts per batch")
    parser.add_argument("--chunk-size", type=int, default=None, help="default: n (one call)")
    parser.add_argument("--steps", type=int, default=None, help="default: 1 (tiny: 4)")
    parser.add_argument("--size", type=int, default=None, help="default: 512 (tiny: 64)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--skip-one-by-one", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    tiny = args.pipeline is None
    config = RenderConfig(
        pipeline=build_tiny_pipeline() if tiny else args.pipeline,
        num_inference_steps=args.steps or (4 if tiny else 1),
        height=args.size or (64 if tiny else 512),
        width=args.size or (64 if tiny else 512),
        chunk_size=args.chunk_size or args.n,
        device="cuda" if args.gpu else "cpu",
    )
    renderer = Renderer(config)
    pipe, cuda = renderer.pipeline, args.gpu
    ideas = [IDEAS[i % len(IDEAS)] for i in range(args.n)]
    prompts = [idea + STYLE for idea in ideas]
    seeds = renderer.seeds_for(args.n, ideas)
    call = dict(
        num_inference_steps=config.num_inference_steps,
        guidance_scale=config.guidance_scale,
        height=config.height,
        width=config.width,
        output_type="pt",
    )

    def plain_batch():
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        return pipe(prompt=prompts, generator=generators, **call).images

    def one_by_one():
        return [
            pipe(prompt=p, generator=torch.Generator("cpu").manual_seed(s), **call).images
            for p, s in zip(prompts, seeds)
        ]

    torch.testing.assert_close(renderer(prompts, ideas).images, plain_batch().float(), atol=2e-3, rtol=0)
    candidates = {"renderer": lambda: renderer(prompts, ideas), "plain batch": plain_batch}
    if not args.skip_one_by_one:
        candidates["one by one"] = one_by_one
    results = timed(candidates, args.repeats, cuda)

    print(
        f"pipeline {config.pipeline} on {renderer.device} ({pipe.dtype}), {args.n} prompts, "
        f"{config.height}x{config.width}, {config.num_inference_steps} steps, "
        f"chunk {config.chunk_size}, torch threads {torch.get_num_threads()}, "
        f"median of {args.repeats}"
    )
    base_wall, base_cpu = results["plain batch"]
    for name, (wall, cpu) in results.items():
        print(
            f"  {name:12s} wall {wall:7.3f} s ({wall / base_wall:5.3f} x plain batch, "
            f"{wall / args.n * 1000:7.1f} ms/image)   "
            f"cpu {cpu:7.3f} s ({cpu / base_cpu:5.3f} x plain batch)"
        )


if __name__ == "__main__":
    main()
