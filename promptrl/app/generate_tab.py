"""Generate tab, `/generate`: ideas -> N prompts per idea from the fine-tuned and the starting model."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from .context import AppContext
from .limits import friendly, number, parse_ideas

TABLE_HEADERS = ["idea", "sample", "fine-tuned prompt", "starting-model prompt"]
TABLE_WIDTHS = ["18%", "8%", "37%", "37%"]


def layout(ctx: AppContext) -> None:
    lim, gen_cfg = ctx.limits, ctx.config.generation
    with gr.Tab("Generate", id="generate"):
        with gr.Row():
            ideas = gr.Textbox(
                label=f"Ideas (one per line, at most {lim.ideas})",
                lines=5,
                scale=2,
                placeholder="a lighthouse in a storm\na cat astronaut",
                elem_id="ideas",
            )
            with gr.Column(scale=1):
                # Numbers, not sliders, where API callers may send anything: gradio rejects an
                # out-of-range slider value itself, with a server-side traceback.
                n = gr.Number(2, label=f"Prompts per idea (1-{lim.prompts_per_idea})", precision=0)
                temperature = gr.Slider(0.05, 2.0, value=gen_cfg.temperature, step=0.05, label="Temperature")
                top_p = gr.Slider(0.05, 1.0, value=gen_cfg.top_p, step=0.05, label="Top-p")
                max_tokens = gr.Number(
                    min(gen_cfg.max_new_tokens, lim.new_tokens),
                    precision=0,
                    label=f"Max tokens (1-{lim.new_tokens})",
                )
                seed = gr.Number(0, label="Seed", precision=0)
        button = gr.Button("Generate prompts", variant="primary", elem_id="generate-btn")
        status = gr.Markdown(elem_id="generate-status")
        with gr.Row():
            tuned = gr.Textbox(
                label="Fine-tuned prompts",
                lines=6,
                buttons=["copy"],
                interactive=False,
                elem_id="tuned-prompts",
            )
            start = gr.Textbox(
                label="Starting-model prompts",
                lines=6,
                buttons=["copy"],
                interactive=False,
                elem_id="start-prompts",
            )
        table = gr.Dataframe(
            headers=TABLE_HEADERS,
            label="Prompts",
            wrap=True,
            interactive=False,
            buttons=["copy"],
            column_widths=TABLE_WIDTHS,
        )
    ctx.shared.update(
        gen_inputs=[ideas, n, temperature, top_p, max_tokens, seed],
        gen_button=button,
        gen_outputs=[table, tuned, start],
        gen_status=status,
    )


def events(ctx: AppContext) -> None:
    models, lim = ctx.models, ctx.limits

    @friendly(5)
    def generate(ideas_text, n, temperature, top_p, max_tokens, seed):
        ideas = parse_ideas(ideas_text, lim)
        n = number(n, "Prompts per idea", 1, lim.prompts_per_idea, integer=True)
        params = dict(
            temperature=number(temperature, "Temperature", 0.05, 2.0),
            top_p=number(top_p, "Top-p", 0.05, 1.0),
            max_new_tokens=number(max_tokens, "Max tokens", 1, lim.new_tokens, integer=True),
        )
        seed = number(seed if seed is not None else 0, "Seed", 0, 2**31 - 1, integer=True)
        batch = [idea for idea in ideas for _ in range(n)]
        tuned, start = models.generate(batch, seed, **params)
        rows = [[idea, k % n + 1, t, s] for k, (idea, t, s) in enumerate(zip(batch, tuned, start))]
        table = pd.DataFrame(rows, columns=TABLE_HEADERS)
        note = " (the starting model is the served model itself)" if models.same_model else ""
        status = f"{len(rows)} prompt(s) from each model for {len(ideas)} idea(s), seed {seed}{note}."
        return table, "\n".join(tuned), "\n".join(start), table, status

    s = ctx.shared
    s["gen_button"].click(
        generate,
        s["gen_inputs"],
        [*s["gen_outputs"], s["render_table"], s["gen_status"]],
        api_name="generate",
    )
