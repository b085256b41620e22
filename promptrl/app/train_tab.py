"""Train tab: `/train_start`, `/train_stop`, `/train_poll` (status, reward/KL plots, samples; a
`gr.Timer` polls it while a run is going) and `/download` (zip of the newest checkpoint or model).

Ideas and configs arrive as uploaded bytes, parsed in memory; only allow-listed hyperparameters
get through (`train_config.py`); the run writes inside the app's runs dir.
"""

from __future__ import annotations

import gradio as gr

from ..config import ALGORITHMS
from ..ideas import load_ideas
from ..presets import DEFAULT_PRESET, PRESETS
from .context import AppContext
from .limits import friendly, parse_ideas, upload_text
from .render_tab import reward_weights, weight_sliders
from .train_config import AS_CONFIGURED, run_config


def layout(ctx: AppContext) -> None:
    lim = ctx.limits
    with gr.Tab("Train", id="train"):
        with gr.Row():
            preset = gr.Dropdown(
                list(PRESETS),
                value=ctx.config.preset if ctx.config.preset in PRESETS else DEFAULT_PRESET,
                label="Preset",
            )
            config_upload = gr.File(
                label="Config YAML (optional; hyperparameters only)",
                file_types=[".yaml", ".yml"],
                type="binary",
            )
            ideas_upload = gr.File(
                label=f"Ideas file (optional, one per line, at most {lim.train_ideas})",
                file_types=[".txt"],
                type="binary",
            )
        with gr.Row():
            steps = gr.Number(0, label=f"Steps (0: as the preset says; at most {lim.train_steps})", precision=0)
            algorithm = gr.Dropdown(
                [AS_CONFIGURED, *ALGORITHMS],
                value=AS_CONFIGURED,
                label="Algorithm",
                info="grpo and rloo compare each idea's samples with each other (no reward baseline)",
            )
            weights = weight_sliders(ctx)
        with gr.Accordion("Hyperparameters", open=False):
            overrides = gr.Textbox(
                label="key=value, one per line (learning rate, KL target, batch sizes, grpo.* and rloo.* keys, ...)",
                lines=3,
                placeholder="ppo.lr=1e-4\nsamples_per_idea=4\ngrpo.loss_type=dr_grpo",
            )
        with gr.Row():
            start_btn = gr.Button("Start training", variant="primary", elem_id="start-btn")
            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn")
        message = gr.Markdown(elem_id="train-message")
        with gr.Row():
            reward_plot = gr.LinePlot(
                x="step", y="value", color="series", title="Reward (mean per step)", label="Reward"
            )
            kl_plot = gr.LinePlot(x="step", y="value", color="series", title="KL to the starting model", label="KL")
        samples = gr.Gallery(
            label="Samples: starting model, newest batches, final model",
            columns=4,
            height="auto",
            object_fit="contain",
            format="png",
            elem_id="samples",
        )
        with gr.Row(equal_height=True):
            download_btn = gr.Button("Zip the newest checkpoint", elem_id="download-btn")
            download_file = gr.File(label="Checkpoint", interactive=False, height=90)
    ctx.shared.update(
        train_inputs=[preset, config_upload, ideas_upload, steps, *weights, overrides, algorithm],
        start_btn=start_btn,
        stop_btn=stop_btn,
        train_message=message,
        train_plots=[reward_plot, kl_plot, samples],
        download_btn=download_btn,
        download_file=download_file,
    )


def events(ctx: AppContext) -> None:
    run, lim = ctx.run, ctx.limits

    @friendly(2)
    def train_start(
        preset, config_bytes, ideas_bytes, steps, w_aesthetic, w_similarity, w_penalty, overrides, algorithm=None
    ):
        config = run_config(
            ctx.config,
            preset,
            upload_text(config_bytes, lim, "config file"),
            overrides,
            steps,
            reward_weights(w_aesthetic, w_similarity, w_penalty),
            lim,
            None if algorithm in (None, AS_CONFIGURED) else algorithm,
        )
        ideas_text = upload_text(ideas_bytes, lim, "ideas file")
        ideas = None
        if ideas_text is not None:  # refuse an empty or oversized file now, not in the thread
            ideas = load_ideas(parse_ideas(ideas_text, lim, lim.train_ideas, "ideas file"))
        return gr.Timer(active=True), run.start(config, ideas)

    @friendly(1)
    def train_stop():
        return run.stop()

    def train_poll(shown):
        key = run.samples_key()
        timer = gr.Timer(active=run.active)
        if key == shown:
            return run.status(), gr.skip(), gr.skip(), gr.skip(), timer, shown
        reward_frame, kl_frame = run.plot_frames()
        return run.status(), reward_frame, kl_frame, run.samples(), timer, key

    @friendly(2)
    def download():
        path = run.zip_latest()
        return str(path), f"Zipped `{path.name}`."

    s, demo = ctx.shared, ctx.shared["demo"]
    s["start_btn"].click(train_start, s["train_inputs"], [s["timer"], s["train_message"]], api_name="train_start")
    s["stop_btn"].click(train_stop, None, [s["train_message"]], api_name="train_stop")
    gr.on(
        [demo.load, s["timer"].tick],
        train_poll,
        s["shown"],
        [s["train_status"], *s["train_plots"], s["timer"], s["shown"]],
        api_name="train_poll",
        show_progress="hidden",
    )
    s["download_btn"].click(download, None, [s["download_file"], s["train_message"]], api_name="download")
