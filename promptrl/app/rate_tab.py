"""Rate tab, `/rate_next`, `/rate_choose`, `/rate_fit`, `/rate_train`: pick the better of two
images; fit a reward to your choices; train on it.

The rater is the authenticated user (`local` on loopback). A visitor sees only their own count
and fit. The fitted reward lives in the app's own folder for that rater; no request names a path.
"""

from __future__ import annotations

import dataclasses

import gradio as gr

from ..errors import UsageError
from .context import AppContext
from .limits import UserError, friendly, number, parse_ideas
from .rating import CHOICE_LABELS, rater_name

SHORTCUTS = """
<script>
document.addEventListener("keydown", (e) => {
  if (["INPUT", "TEXTAREA"].includes(document.activeElement?.tagName)) return;
  const ids = {"1": "rate-a", "2": "rate-b", "t": "rate-tie", "x": "rate-both_bad", "s": "rate-skip"};
  const id = ids[e.key];
  if (id) document.getElementById(id)?.click();
});
</script>
"""
"""Keyboard: 1 (A), 2 (B), t (tie), x (both bad), s (skip); not while typing in a box."""


def layout(ctx: AppContext) -> None:
    with gr.Tab("Rate", id="rate"):
        gr.Markdown(
            "Pick the better image. Both come from prompts the served model wrote for the idea, rendered "
            "from the same seed. Keys: **1** A, **2** B, **t** tie, **x** both bad, **s** skip. "
            "After 10 or more choices, fit a reward to them and train on it."
        )
        with gr.Row():
            idea = gr.Textbox(label="Idea (blank: the next of the served ideas)", elem_id="rate-idea")
            unsure = gr.Checkbox(False, label="Ask where my fitted reward is least sure")
            nxt = gr.Button("Next pair", elem_id="rate-next")
        token = gr.Textbox(visible=False)
        with gr.Row():
            a = gr.Image(label="A", type="pil", format="png", interactive=False)
            b = gr.Image(label="B", type="pil", format="png", interactive=False)
        with gr.Row():
            buttons = {c: gr.Button(label, elem_id=f"rate-{c}") for c, label in CHOICE_LABELS.items()}
        status = gr.Markdown(elem_id="rate-status")
        with gr.Row():
            fit = gr.Button("Fit my reward", elem_id="rate-fit")
            steps = gr.Number(20, label="Training steps", precision=0)
            train = gr.Button("Train on my reward", elem_id="rate-train")
    ctx.shared.update(
        rate_idea=idea,
        rate_unsure=unsure,
        rate_next=nxt,
        rate_token=token,
        rate_images=[a, b],
        rate_buttons=buttons,
        rate_status=status,
        rate_fit=fit,
        rate_steps=steps,
        rate_train=train,
    )


def events(ctx: AppContext) -> None:
    rating, lim = ctx.rating, ctx.limits

    def summary(rater: str) -> str:
        n = rating.store.count(rater)
        info = _fit_info(rating.reward_dir(rater))
        fitted = ""
        if info:
            low, high = info["accuracy_95"]
            fitted = f"; fitted on {info['pairs']}: held-out accuracy {info['accuracy']:.0%} ({low:.0%}-{high:.0%})"
        return f"{n} choice(s) by {rater}{fitted}."

    @friendly(4)
    def next_pair(idea_text, unsure, request: gr.Request):
        rater = rater_name(request)
        idea = parse_ideas(idea_text, lim, 1)[0] if (idea_text or "").strip() else None
        head = rating.reward_dir(rater)
        if unsure and not _fit_info(head):
            raise UserError("Fit your reward first (Fit my reward): asking where it is unsure needs a fit.")
        token, pair = rating.next_pair(idea, str(head) if unsure else None)
        return token, pair.images[0], pair.images[1], f"Idea: {pair.idea}. {summary(rater)}"

    def chooser(choice: str):
        @friendly(4)
        def choose(token, idea_text, unsure, request: gr.Request):
            rating.choose(token, choice, rater_name(request))
            return next_pair(idea_text, unsure, request)

        choose.__name__ = f"rate_{choice}"
        return choose

    @friendly(1)
    def fit_mine(request: gr.Request):
        from ..prefs.fit import fit_preferences

        rater = rater_name(request)
        r = ctx.models.config.rewards
        with ctx.models.lock:
            info = fit_preferences(rating.store, rating.reward_dir(rater), r.clip_model, r.clip_pretrained, rater=rater)
        low, high = info["accuracy_95"]
        return (
            f"Fitted on {info['pairs']} pairs: held-out accuracy {info['accuracy']:.0%} "
            f"(95% {low:.0%}-{high:.0%}), log-loss {info['log_loss']:.3f}."
        )

    @friendly(1)
    def train_mine(steps, request: gr.Request):
        rater = rater_name(request)
        head = rating.reward_dir(rater)
        if not _fit_info(head):
            raise UserError("Fit your reward first (Fit my reward), then train on it.")
        steps = number(steps, "Training steps", 1, lim.train_steps, integer=True)
        base = ctx.config
        rewards = dataclasses.replace(base.rewards, terms=[{"type": "preference", "path": str(head)}])
        return ctx.run.start(dataclasses.replace(base, rewards=rewards, steps=steps, progress=False), None)

    s = ctx.shared
    ins = [s["rate_idea"], s["rate_unsure"]]
    outs = [s["rate_token"], *s["rate_images"], s["rate_status"]]
    s["rate_next"].click(next_pair, ins, outs, api_name="rate_next")
    for choice, button in s["rate_buttons"].items():
        button.click(chooser(choice), [s["rate_token"], *ins], outs, api_name=f"rate_{choice}")
    s["rate_fit"].click(fit_mine, None, [s["rate_status"]], api_name="rate_fit")
    s["rate_train"].click(train_mine, [s["rate_steps"]], [s["rate_status"]], api_name="rate_train")


def _fit_info(folder) -> dict | None:
    from ..rewards.learned import load_head

    try:
        return load_head(folder)[1]
    except (UsageError, FileNotFoundError):
        return None
