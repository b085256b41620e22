"""Render & score tab, `/render`: chosen table rows -> seeded images from both models' prompts,
each with every reward component."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ..rendering import idea_seed
from ..rewards import RewardError, score
from .context import AppContext
from .generate_tab import TABLE_HEADERS, TABLE_WIDTHS
from .limits import UserError, friendly, number, parse_rows, table_text
from .model_cache import SLIDER_TYPES


def reward_weights(aesthetic, similarity, penalty) -> dict[str, float]:
    values = (aesthetic, similarity, penalty)
    return {kind: number(v, f"The {kind} weight", -5, 5) for kind, v in zip(SLIDER_TYPES, values)}


def weight_sliders(ctx: AppContext) -> list[gr.Slider]:
    return [gr.Slider(-5, 5, value=ctx.defaults[k], step=0.05, label=f"{k} weight") for k in SLIDER_TYPES]


def layout(ctx: AppContext) -> None:
    with gr.Tab("Render & score", id="render"):
        gr.Markdown(
            "Generate fills this table; edit it freely. Each row renders twice with the "
            "same seed (from the idea): fine-tuned prompt and starting-model prompt."
        )
        table = gr.Dataframe(
            headers=TABLE_HEADERS,
            label="Rows",
            wrap=True,
            interactive=True,
            show_row_numbers=True,
            column_widths=TABLE_WIDTHS,
        )
        with gr.Row():
            rows = gr.Textbox(label=f"Rows to render, e.g. 1,3-4 (blank: all; at most {ctx.limits.render_rows})")
            seed = gr.Number(0, label="Image seed", precision=0)
        with gr.Row():
            weights = weight_sliders(ctx)
        button = gr.Button("Render & score", variant="primary", elem_id="render-btn")
        status = gr.Markdown(elem_id="render-status")
        with gr.Row():
            tuned = gr.Gallery(label="Fine-tuned", columns=3, height="auto", format="png", elem_id="tuned-gallery")
            start = gr.Gallery(
                label="Starting model",
                columns=3,
                height="auto",
                format="png",
                elem_id="start-gallery",
            )
        scores = gr.Dataframe(label="Scores", wrap=True, interactive=False, buttons=["copy"])
    ctx.shared.update(
        render_table=table,
        render_inputs=[table, rows, seed, *weights],
        render_button=button,
        render_outputs=[tuned, start, scores, status],
    )


def events(ctx: AppContext) -> None:
    models, lim = ctx.models, ctx.limits

    @friendly(4)
    def render(table, rows_text, seed, w_aesthetic, w_similarity, w_penalty):
        frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
        frame = frame.replace(r"^\s*$", pd.NA, regex=True).dropna(how="all")  # the UI's blank rows
        if frame.empty or frame.shape[1] < 4:
            raise UserError(
                "Nothing to render: generate prompts first (or fill the table: idea, "
                "sample, fine-tuned prompt, starting-model prompt)."
            )
        rows = parse_rows(rows_text, len(frame), lim)
        seed = number(seed if seed is not None else 0, "Seed", 0, 2**31 - 1, integer=True)
        reward = models.reward(reward_weights(w_aesthetic, w_similarity, w_penalty))
        picked = frame.iloc[rows]
        ideas = [table_text(x, "An idea", lim) for x in picked.iloc[:, 0]]
        prompts = [table_text(x, "A prompt", lim) for column in (2, 3) for x in picked.iloc[:, column]]
        ideas2 = ideas + ideas
        seeds = [idea_seed(seed, idea) for idea in ideas2]  # same noise for both models' prompts
        message = f"Rendered {len(rows)} row(s) with seed {seed}; components are unweighted."
        with models.lock:
            out = models.renderer()(prompts, ideas=ideas2, seeds=seeds, return_pil=True)
            try:
                total, comps = score(reward, out.images, out.prompts, ideas2)
                totals = total.tolist()
                comps = {name: v.tolist() for name, v in comps.items()}
            except RewardError as err:
                totals, comps = [None] * len(prompts), {}
                message = f"⚠️ Scoring failed, images are shown unscored: {err}"
                gr.Warning(message)
        captions = [_caption(p, totals[i], {k: v[i] for k, v in comps.items()}) for i, p in enumerate(out.prompts)]
        gallery = list(zip(out.pil, captions))
        k = len(rows)
        records = []
        for i, p in enumerate(out.prompts):
            record = {
                "row": rows[i % k] + 1,
                "model": "fine-tuned" if i < k else "starting",
                "reward": totals[i],
            }
            record.update({name: v[i] for name, v in comps.items()})
            record.update({"seed": out.seeds[i], "idea": ideas2[i], "prompt": p})  # text last: the numbers stay in view
            records.append(record)
        if any(out.truncated):
            message += f" {sum(out.truncated)} prompt(s) were cut to the text encoder's token limit."
        return gallery[:k], gallery[k:], pd.DataFrame(records), message

    s = ctx.shared
    s["render_button"].click(render, s["render_inputs"], s["render_outputs"], api_name="render")


def _caption(prompt: str, total: float | None, components: dict[str, float]) -> str:
    """Scores first: a gallery thumbnail shows only the caption's first line."""
    if total is None:
        return f"(not scored)\n{prompt}"
    parts = " · ".join(f"{name} {value:.3f}" for name, value in components.items())
    return f"reward {total:.3f} | {parts}\n{prompt}"
