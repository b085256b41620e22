"""Evaluate tab, `/evaluate`: a small paired evaluation of the served models (`promptrl.eval`).

The starting model is the base and the fine-tuned model the tuned side; the reward is the
served one at the config's weights, the judges the config's. A visitor chooses only ideas (typed,
within the limits; blank means the config's held-out ideas), a sample count and a seed: no path,
no model, and nothing is written.
"""

from __future__ import annotations

import gradio as gr

from ..eval.compare import compare, heldout_split, judges_from_config
from ..ideas import load_ideas
from ..rewards import WeightedSum
from .context import AppContext
from .limits import UserError, friendly, number, parse_ideas


def layout(ctx: AppContext) -> None:
    lim = ctx.limits
    with gr.Tab("Evaluate", id="evaluate"):
        gr.Markdown(
            "Paired comparison of the starting and the fine-tuned model: the same sampling and "
            "image seeds for both, every reward and judge, 95% bootstrap intervals."
        )
        with gr.Row():
            ideas = gr.Textbox(
                label=f"Ideas (one per line, at most {lim.ideas}; blank: the held-out ideas)",
                lines=4,
                scale=2,
                elem_id="eval-ideas",
            )
            with gr.Column(scale=1):
                samples = gr.Number(2, label=f"Samples per idea (1-{lim.eval_samples})", precision=0)
                seed = gr.Number(0, label="Seed", precision=0)
        button = gr.Button("Evaluate", variant="primary", elem_id="eval-btn")
        status = gr.Markdown(elem_id="eval-status")
        table = gr.Markdown(elem_id="eval-table")
        grid = gr.Image(
            label="starting model | fine-tuned",
            format="png",
            interactive=False,
            elem_id="eval-grid",
        )
    ctx.shared.update(eval_inputs=[ideas, samples, seed], eval_outputs=[table, grid, status], eval_button=button)


def events(ctx: AppContext) -> None:
    models, lim = ctx.models, ctx.limits
    judges: list[WeightedSum] = []  # built on first use, then shared by every request

    def judge() -> WeightedSum:
        with models.lock:
            if not judges:
                judges.append(judges_from_config(models.config, models.renderer().device))
            return judges[0]

    @friendly(3)
    def evaluate(ideas_text, samples, seed):
        cfg = models.config
        if (ideas_text or "").strip():
            ideas = parse_ideas(ideas_text, lim)
        else:
            ideas = heldout_split(load_ideas(cfg.ideas), cfg.eval.heldout, cfg.seed)[1][: lim.ideas]
            if not ideas:
                raise UserError("The config holds no ideas out: type some ideas, one per line.")
        samples = number(samples, "Samples per idea", 1, lim.eval_samples, integer=True)
        seed = number(seed if seed is not None else 0, "Seed", 0, 2**31 - 1, integer=True)
        tuned, start = models.generators()
        reward = models.reward(models.default_weights())
        with models.lock:
            result = compare(
                start,
                tuned,
                models.renderer(),
                reward,
                ideas,
                samples,
                seed,
                judge(),
                cfg.eval.bootstrap,
                {"base": "starting model", "tuned": "fine-tuned"},
                progress=False,
            )
        status = f"{len(ideas)} idea(s) x {samples} sample(s), seed {seed}: {2 * len(ideas) * samples} images."
        return result.markdown(), result.grid, status

    s = ctx.shared
    s["eval_button"].click(evaluate, s["eval_inputs"], s["eval_outputs"], api_name="evaluate")
