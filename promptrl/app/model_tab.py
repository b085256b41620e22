"""Model tab, `/model_info`: what is loaded, on which device, and the app's limits."""

from __future__ import annotations

import gradio as gr

from .context import AppContext
from .limits import friendly


def layout(ctx: AppContext) -> None:
    with gr.Tab("Model", id="model"):
        ctx.shared["model_info"] = gr.Markdown(elem_id="model-info")
        ctx.shared["model_refresh"] = gr.Button("Refresh")


def events(ctx: AppContext) -> None:
    @friendly(1)
    def model_info():
        return ctx.models.describe()

    s = ctx.shared
    gr.on(
        [s["demo"].load, s["model_refresh"].click],
        model_info,
        None,
        [s["model_info"]],
        api_name="model_info",
    )
