"""Rate tab, `/rate_next`, `/rate_a` .. `/rate_d`, `/rate_tie`, `/rate_both_bad`, `/rate_skip`,
`/rate_fit`, `/rate_train`: pick the better of two images (or the best of four); fit a reward to
your choices; train on it.

The rater is the authenticated user (`local` on loopback). A visitor sees only their own count
and fits only their own choices, unless the operator serves with `--shared-ratings` (then
everyone's). The fitted reward lives in the app's own folder for that rater; no request names a
path.
"""

from __future__ import annotations

import dataclasses

import gradio as gr

from ..errors import UsageError
from .context import AppContext
from .limits import UserError, friendly, number, parse_ideas
from .rating import BEST_OF_FOUR_LABELS, CHOICE_LABELS, rater_name

BUTTONS = ("a", "b", "c", "d", "tie", "both_bad", "skip")
"""Every choice button, in their order on the page; which show depends on the round's size."""
SHORTCUTS = """
<script>
document.addEventListener("keydown", (e) => {
  if (["INPUT", "TEXTAREA"].includes(document.activeElement?.tagName)) return;
  const ids = {"1": "rate-a", "2": "rate-b", "3": "rate-c", "4": "rate-d", "t": "rate-tie",
               "x": "rate-both_bad", "s": "rate-skip"};
  const id = ids[e.key];
  if (id) document.getElementById(id)?.click();
});
</script>
"""
"""Keyboard: 1-4 (A-D), t (tie), x (both bad / none good), s (skip); not while typing in a box."""


def layout(ctx: AppContext) -> None:
    with gr.Tab("Rate", id="rate"):
        gr.Markdown(
            "Pick the better image, or with **Four images** the best of four. All come from prompts the "
            "served model wrote for the idea, rendered from the same seed. Keys: **1**-**4** A-D, **t** tie, "
            "**x** both bad (none good), **s** skip. After 10 or more choices, fit a reward to them and train on it."
        )
        with gr.Row():
            idea = gr.Textbox(label="Idea (blank: the next of the served ideas)", elem_id="rate-idea")
            unsure = gr.Checkbox(False, label="Ask where my fitted reward is least sure")
            four = gr.Checkbox(False, label="Four images: pick the best", elem_id="rate-four")
            nxt = gr.Button("Next", elem_id="rate-next")
        token = gr.Textbox(visible=False)
        with gr.Row():
            images = [
                gr.Image(label=name, type="pil", format="png", interactive=False, visible=name in "AB")
                for name in "ABCD"
            ]
        with gr.Row():
            buttons = {
                c: gr.Button(
                    CHOICE_LABELS.get(c, BEST_OF_FOUR_LABELS.get(c)), elem_id=f"rate-{c}", visible=c in CHOICE_LABELS
                )
                for c in BUTTONS
            }
        status = gr.Markdown(elem_id="rate-status")
        with gr.Row():
            fit = gr.Button("Fit my reward", elem_id="rate-fit")
            steps = gr.Number(20, label="Training steps", precision=0)
            train = gr.Button("Train on my reward", elem_id="rate-train")
    ctx.shared.update(
        rate_idea=idea,
        rate_unsure=unsure,
        rate_four=four,
        rate_next=nxt,
        rate_token=token,
        rate_images=images,
        rate_buttons=buttons,
        rate_status=status,
        rate_fit=fit,
        rate_steps=steps,
        rate_train=train,
    )


def events(ctx: AppContext) -> None:
    rating, lim = ctx.rating, ctx.limits

    def summary(rater: str) -> str:
        text = f"{rating.store.count(rater)} choice(s) by {rater}"
        if rating.shared:
            text += f", {rating.store.count()} by everyone"
        info = _fit_info(rating.reward_dir(rater))
        if info:
            low, high = info["accuracy_95"]
            whose = "everyone's " if info.get("rater") is None else ""
            text += (
                f"; fitted on {whose}{info['pairs']}: held-out accuracy {info['accuracy']:.0%} ({low:.0%}-{high:.0%})"
            )
        return text + "."

    @friendly(6)
    def next_round(idea_text, unsure, four, request: gr.Request):
        rater = rater_name(request)
        idea = parse_ideas(idea_text, lim, 1)[0] if (idea_text or "").strip() else None
        head = rating.reward_dir(rater)
        if unsure and not _fit_info(head):
            raise UserError("Fit your reward first (Fit my reward): asking where it is unsure needs a fit.")
        token, shown = rating.next_round(idea, 4 if four else 2, str(head) if unsure else None)
        images = shown.images + [None] * (4 - len(shown.images))
        return token, *images, f"Idea: {shown.idea}. {summary(rater)}"

    def chooser(choice: str):
        @friendly(6)
        def choose(token, idea_text, unsure, four, request: gr.Request):
            rating.choose(token, choice, rater_name(request))
            return next_round(idea_text, unsure, four, request)

        choose.__name__ = f"rate_{choice}"
        return choose

    def four_or_two(four: bool):
        labels = BEST_OF_FOUR_LABELS if four else CHOICE_LABELS
        return (
            *[gr.Image(visible=bool(four))] * 2,
            *[gr.Button(labels.get(c, c), visible=c in labels) for c in BUTTONS],
        )

    @friendly(1)
    def fit_mine(request: gr.Request):
        from ..prefs.fit import fit_preferences

        rater = rater_name(request)
        r = ctx.models.config.rewards
        with ctx.models.lock:
            info = fit_preferences(
                rating.store,
                rating.reward_dir(rater),
                r.clip_model,
                r.clip_pretrained,
                rater=rating.scope(rater),
            )
        low, high = info["accuracy_95"]
        whose = "everyone's " if rating.shared else ""
        return (
            f"Fitted on {whose}{info['pairs']} pairs: held-out accuracy {info['accuracy']:.0%} "
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
    ins = [s["rate_idea"], s["rate_unsure"], s["rate_four"]]
    outs = [s["rate_token"], *s["rate_images"], s["rate_status"]]
    s["rate_next"].click(next_round, ins, outs, api_name="rate_next")
    for choice, button in s["rate_buttons"].items():
        button.click(chooser(choice), [s["rate_token"], *ins], outs, api_name=f"rate_{choice}")
    s["rate_four"].change(
        four_or_two, [s["rate_four"]], [*s["rate_images"][2:], *s["rate_buttons"].values()], api_visibility="private"
    )
    s["rate_fit"].click(fit_mine, None, [s["rate_status"]], api_name="rate_fit")
    s["rate_train"].click(train_mine, [s["rate_steps"]], [s["rate_status"]], api_name="rate_train")


def _fit_info(folder) -> dict | None:
    from ..rewards.learned import load_head

    try:
        return load_head(folder)[1]
    except (UsageError, FileNotFoundError):
        return None
