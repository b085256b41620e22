"""The Gradio app: generate prompts, render and score them, train with PPO, inspect the models.

`build_app(...)` returns a queued `gr.Blocks`; `serve(demo, ...)` launches it (credentials
required beyond loopback); `main()` is the command line behind `python app.py` and `promptrl app`.

One module per job: `limits` (bounds and input checks), `model_cache` (the shared models), `training`
(the background run), `train_config` (what a visitor may set), a module per tab
(`generate_tab`, `render_tab`, `train_tab`, `evaluate_tab`, `model_tab`), `build` (assembling them) and
`serving` (who may connect, the command line).
"""

from .build import TABS, build_app
from .limits import Limits, UserError
from .model_cache import ModelCache
from .serving import generated_auth, main, serve

__all__ = [
    "TABS",
    "Limits",
    "ModelCache",
    "UserError",
    "build_app",
    "generated_auth",
    "main",
    "serve",
]
