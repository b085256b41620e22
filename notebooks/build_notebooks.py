"""Write the notebooks in this directory from the cell sources below (outputs stripped).

    python notebooks/build_notebooks.py

Edit the cells here, not in the .ipynb files, so the committed notebooks stay output-free and
their cell ids stay stable. The repository and documentation URLs come from pyproject.toml's
`[project.urls]`, where they are set once.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli, the same parser (pytest depends on it there)
    import tomli as tomllib

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent
URLS = tomllib.loads((HERE.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
REPO_URL = URLS["Repository"]
"""https://github.com/<owner>/<repo>: the notebooks' Colab badge and their `%pip install`."""
REPO = REPO_URL.removeprefix("https://github.com/")
DOCS_URL = URLS["Documentation"].rstrip("/")
COLAB = "https://colab.research.google.com/github/{repo}/blob/main/notebooks/{name}"
BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"

SETUP = f"""\
import importlib.util
import sys

IN_COLAB = "google.colab" in sys.modules
REPO_URL = "{REPO_URL}"

if IN_COLAB:
    %pip install -q git+{{REPO_URL}}
elif importlib.util.find_spec("promptrl") is None:
    %pip install -q -e ..  # a clone of the repository: the package is one directory up
"""

GPU_CHECK = """\
import torch

if torch.cuda.is_available():
    gpu = torch.cuda.get_device_properties(0)
    print(f"GPU: {gpu.name}, {gpu.total_memory / 2**30:.0f} GiB")
else:
    print(
        "No GPU: this notebook runs its tiny offline mode on the CPU (toy models, a few minutes).\\n"
        "For the real models in Colab: Runtime > Change runtime type > T4 GPU, then Run all."
    )
"""

# --------------------------------------------------------------------------- promptrl_colab

COLAB_CELLS = [
    (
        "md",
        """\
# promptrl: teach a prompt generator to make better Stable Diffusion images

{badge}

You give short ideas ("a lighthouse in a storm"). A language model with a value head
(Bloom-560m) expands each idea into a prompt, an image model renders it (SD-Turbo, or the
family you pick: SDXL-Turbo, SD3.5 Medium, FLUX.1-schnell, PixArt-Sigma, Sana; the same noise
seed for an idea at every step, so a better score means a better prompt), and rewards score each
image: the LAION aesthetic predictor, CLIP similarity between the image and your idea (so
prompts stay on topic), a penalty on piled-up modifiers, and any reward you write in Python.
PPO, with a KL penalty against the starting model, fine-tunes the generator to earn more. At the
end you can teach it your own taste: rate images in the app and train on a reward fitted to
your choices.

Two modes:
- **the family you pick** (needs a GPU; a Colab T4 runs `bloom-560m`, which renders with
  SD-Turbo): the real models from the Hugging Face Hub.
- **`tiny`** (CPU, offline): tiny random stand-ins built locally. It runs every step of the
  pipeline in a few minutes, but its images are noise and its rewards arbitrary: it shows the
  mechanics, not the art.
""",
    ),
    ("md", "## 1. Install, check the GPU"),
    ("code", SETUP),
    ("code", GPU_CHECK),
    (
        "md",
        """\
## 2. Parameters

`FAMILY` picks the image model the generator learns to write prompts for (a list in Colab);
each is a preset in which Bloom-560m writes for that model, as long prompts as its text encoder
reads ([which image model]({docs}/families/)). `MODE` is the preset that runs: `FAMILY` on a
GPU, `tiny` on a CPU (or set it to any preset, such as `gpt2`). Everything else in the preset
can be changed with `OVERRIDES` (the same `key=value` strings as `promptrl train --set`).

**Which fit a free Colab T4** (16 GB of GPU memory, about 12.7 GB of RAM). Estimates from the
models' parameter counts, not measured:

| `FAMILY` | renders with | on a free T4 |
|---|---|---|
| `bloom-560m` | SD-Turbo | yes (below) |
| `sdxl-turbo` | SDXL-Turbo | yes, with `render.vae_slicing=true` (added on a GPU under 20 GB) |
| `sana-600m` | Sana 600M | tight, with `render.vae_slicing=true` (added); the T4 emulates bfloat16, slowly |
| `sd3.5-medium` | SD3.5 Medium | only without its T5 encoder (`render.drop_t5=true` and what it needs, added: prompts are then read up to 77 tokens), and slow: 40 steps at 1024x1024 take 20-30 minutes per PPO step |
| `pixart-sigma` | PixArt-Sigma | no: 11 GB of weights; a 24 GB GPU (L4), or `render.offload=model` with more RAM than the free tier's |
| `flux-schnell` | FLUX.1-schnell | no: 34 GB of weights; an A100 (40 GB with `render.offload=model`) |

**Colab fit of `bloom-560m`.** On a T4 (16 GB) the `bloom-560m` preset needs about 10-12 GB of GPU memory and
roughly 20-30 minutes per 100 PPO steps. Both are estimates, derived from the models' parameter
and FLOP counts and the T4's published throughput, not measured ([Colab fit]({docs}/colab/) shows
the arithmetic). If it runs out of memory, add to `OVERRIDES`, in this order:
`"render.chunk_size=4"`; then `"ppo.mini_batch_size=4"`, `"ppo.forward_batch_size=4"`;
then `"policy.gradient_checkpointing=true"`, `"generation.max_new_tokens=32"`. If it is too slow:
`"render.height=384"`, `"render.width=384"`, `"ppo.batch_size=16"`, or fewer `STEPS`.
""",
    ),
    (
        "params",
        """\
FAMILY = "bloom-560m"  # @param ["bloom-560m","sdxl-turbo","sd3.5-medium","flux-schnell","pixart-sigma","sana-600m"]
MODE = FAMILY if torch.cuda.is_available() else "tiny"  # the preset that runs
IDEAS = "bundled"  # the 256 bundled ideas; or a list of your own, a text file, "hf:<dataset>:<column>"
COMPARE_IDEAS = [  # the before/after comparison: same ideas, same seeds
    "a lighthouse in a storm",
    "a cat astronaut floating in space",
    "a cozy cabin in the snowy woods",
    "a bowl of ramen on a wooden table",
]
STEPS = None  # PPO steps; None: the preset's 200, 24 in tiny mode
REWARD_WEIGHTS = {}  # the built-in rewards' weights by type, e.g. {"aesthetic": 1.0, "similarity": 4.0}
COLOURFULNESS_WEIGHT = 0.5  # weight of the custom reward written below (0: leave it out)
OVERRIDES = []  # any config key=value, e.g. ["ppo.lr=5e-5", "render.num_inference_steps=2"]
PLOT_EVERY = 4  # redraw the live plots every N steps
OUTPUT_DIR = None  # None: runs/<MODE>
PUSH_TO_HUB = False  # upload the trained generator (needs an HF_TOKEN secret with write access)
HUB_REPO = "<your-username>/promptrl-bloom-560m"
LAUNCH_APP = IN_COLAB  # start the Gradio app on the trained generator at the end
""",
    ),
    (
        "md",
        """\
## 3. The configuration

In tiny mode the run is sized for a CPU: 24 steps on the four comparison ideas, each sampled
several times per batch, and every prompt's reward compared with the other prompts for the same
idea (`rewards.baseline=group`: same idea, same image seed, so the difference is the prompt's
doing). On a GPU under 20 GB (a T4) the larger image models get the settings of the table above.
""",
    ),
    (
        "code",
        """\
import dataclasses

from promptrl import load_config
from promptrl.rewards import weighted_terms
from promptrl.standins import resolve_tiny

TINY_RUN = ["steps=24", "samples_per_idea=4", "rewards.baseline=group", "image_every=4", "save_every=8"]
if MODE == "tiny" and IDEAS == "bundled":
    IDEAS = COMPARE_IDEAS
# What the larger image models need on a GPU under 20 GB (a T4): estimates (docs: which image model).
SMALL_GPU = {
    "sdxl-turbo": ["render.vae_slicing=true"],
    "sana-600m": ["render.vae_slicing=true"],
    "sd3.5-medium": [
        "render.drop_t5=true",  # T5-XXL alone is 9.5 GB
        "generation.max_new_tokens=48",  # CLIP reads the prompt now: 77 tokens
        "render.vae_slicing=true",
    ],
}
small_gpu = torch.cuda.is_available() and torch.cuda.get_device_properties(0).total_memory < 20 * 2**30
fitting = SMALL_GPU.get(MODE, []) if small_gpu else []
if small_gpu and MODE in ("pixart-sigma", "flux-schnell"):
    print(f"{MODE} is unlikely to fit this GPU (see the table above): expect it to run out of memory.")

overrides = (TINY_RUN if MODE == "tiny" else []) + fitting + list(OVERRIDES)
overrides += [f"output_dir={OUTPUT_DIR or 'runs/' + MODE}", "trackers=[]", "progress=false"]
if STEPS is not None:
    overrides.append(f"steps={STEPS}")
config = resolve_tiny(load_config(MODE, overrides=overrides))  # tiny:<asset> -> local paths

terms = weighted_terms(config.rewards.terms, REWARD_WEIGHTS)  # a zero weight drops a reward
config = dataclasses.replace(config, rewards=dataclasses.replace(config.rewards, terms=terms))

print(f"{MODE}: {config.policy.model} -> {config.render.pipeline}, {config.steps} steps of "
      f"{config.ppo.batch_size} prompts ({config.samples_per_idea} per idea)")
for t in config.rewards.terms:
    print("  reward", t)
if fitting:
    print("  for this GPU:", " ".join(fitting))
""",
    ),
    (
        "md",
        """\
## 4. Rewards, including your own

A reward is any function `reward(images, prompts, ideas) -> one number per image`, where
`images` is a `[batch, 3, H, W]` tensor in [0, 1]. Here is colourfulness (Hasler and
Süsstrunk, 2003), mixed with the preset's built-in rewards by a `WeightedSum`. `score` returns
the total and each component: try it on a few images before training.
""",
    ),
    (
        "code",
        '''\
from IPython.display import Image, Markdown, display

from promptrl import PromptTrainer
from promptrl.plots import image_grid
from promptrl.rendering import to_pil
from promptrl.rewards import score


def colourfulness(images, prompts, ideas):
    """Hasler-Süsstrunk colourfulness: spread plus distance from grey of the opponent colours."""
    r, g, b = images[:, 0].flatten(1), images[:, 1].flatten(1), images[:, 2].flatten(1)
    rg, yb = r - g, (r + g) / 2 - b
    return torch.hypot(rg.std(1), yb.std(1)) + 0.3 * torch.hypot(rg.mean(1), yb.mean(1))


device = "cuda" if torch.cuda.is_available() else "cpu"
extra = {"colourfulness": (COLOURFULNESS_WEIGHT, colourfulness)} if COLOURFULNESS_WEIGHT else {}
# The config's reward (its terms, weights and models) plus yours; re-running starts the run over.
trainer = PromptTrainer(config, extra_rewards=extra, ideas=IDEAS, overwrite=True)
reward = trainer.reward
render = trainer.renderer(COMPARE_IDEAS, ideas=COMPARE_IDEAS)  # the bare ideas as prompts
total, parts = score(reward, render.images, render.prompts, COMPARE_IDEAS)
rows = ["| prompt | total | " + " | ".join(parts) + " |", "|---" * (len(parts) + 2) + "|"]
rows += [f"| {p} | {t:.3f} | " + " | ".join(f"{parts[k][i]:.3f}" for k in parts) + " |"
         for i, (p, t) in enumerate(zip(render.prompts, total.tolist()))]
display(Markdown("\\n".join(rows)))
display(image_grid(to_pil(render.images), [f"{t:.3f} | {p}" for p, t in zip(render.prompts, total.tolist())]))
''',
    ),
    (
        "md",
        """\
## 5. Train

The plots redraw every `PLOT_EVERY` steps: each reward component, the KL divergence from the
starting model and its coefficient, and the latest grid of the batch's images. Every number is
also in `metrics.jsonl` in the run directory.
""",
    ),
    (
        "code",
        """\
from pathlib import Path

from IPython.display import clear_output

from promptrl.plots import plot_report

run_dir, paths = Path(config.output_dir), trainer.run.paths  # paths names every file of the run
trainer.setup()
trainer.before = trainer.before_after_samples(COMPARE_IDEAS)  # the comparison ideas, before any training


def live_plot(metrics):
    step = metrics["step"]
    if step % PLOT_EVERY and step != config.steps:
        return
    plot_report(trainer.history, run_dir / "live.png")
    grids = paths.image_grids()
    clear_output(wait=True)
    print(f"step {step}/{config.steps}: reward {metrics['reward/total/mean']:.3f}, "
          f"KL {metrics['objective/kl']:.2f}")
    display(Image(filename=run_dir / "live.png"))
    if grids:
        print(grids[-1].name)
        display(Image(filename=grids[-1], width=768))


history = trainer.train(callback=live_plot)
REWARD_HISTORY = [h["reward/total/mean"] for h in history]
""",
    ),
    (
        "md",
        """\
## 6. Before and after

The same ideas, the same sampling seed and the same image seeds, before and after training.
""",
    ),
    (
        "code",
        """\
import json
import statistics

display(Markdown(paths.samples.read_text()))
display(Image(filename=paths.before_after, width=512))
k = min(3, len(REWARD_HISTORY))
summary = {
    "first": statistics.mean(REWARD_HISTORY[:k]),  # mean reward of the first and last k steps
    "last": statistics.mean(REWARD_HISTORY[-k:]),
    "before": statistics.mean(b["reward"] for b in trainer.before),  # the comparison ideas
    "after": statistics.mean(a["reward"] for a in trainer.after),
}
print("REWARD_RISE", json.dumps(summary))
""",
    ),
    (
        "md",
        """\
## 7. Save, reload, share

`train()` saved the generator with `save_pretrained` in `<run>/model`: the model (or, with
LoRA, its adapter), the value head and the tokenizer. It reloads like any Hugging Face model.
""",
    ),
    (
        "code",
        """\
from promptrl import Run

run = Run.locate(run_dir)  # the run's final model, its config and the model it started from
print(sorted(p.name for p in run.model.iterdir()))
generator = run.load_generator(device=device)
for idea, prompt in zip(["a dragon made of glass"] * 3, generator(["a dragon made of glass"] * 3).prompts):
    print(f"{idea} -> {prompt}")
""",
    ),
    (
        "code",
        """\
if PUSH_TO_HUB:
    import os

    from huggingface_hub import HfApi

    token = os.environ.get("HF_TOKEN")
    if token is None and IN_COLAB:
        from google.colab import userdata

        token = userdata.get("HF_TOKEN")  # add it under Secrets (the key icon on the left)
    api = HfApi(token=token)
    api.create_repo(HUB_REPO, exist_ok=True)
    api.upload_folder(repo_id=HUB_REPO, folder_path=str(run.model))
    print(f"https://huggingface.co/{HUB_REPO}")
""",
    ),
    (
        "md",
        """\
## 8. The Gradio app

Generate prompts with the trained model next to the starting one, render and score them, or
start another run. The app shows up below this cell through Colab's own port proxy: only you
(signed in to this notebook) can reach it. `SHARE_APP = True` instead makes a public link that
anyone who has it can open; it is then protected by a generated password, printed here: share the
link and the password only with people you trust (they can start training runs on your GPU).
""",
    ),
    (
        "code",
        """\
SHARE_APP = False  # True: a public gradio.live link, behind a generated password
APP_PORT = 7860
APP_RUNS = "runs/app"  # the app's runs: its Train tab's runs and your ratings (preferences.db)
if LAUNCH_APP:
    import gc

    from promptrl.app import build_app, generated_auth, serve

    trainer = generator = None  # free the GPU for the app's own copies
    gc.collect()
    torch.cuda.empty_cache()
    app = build_app(preset=MODE, model_dir=str(run_dir), extra_rewards=extra or None, runs_dir=APP_RUNS)
    if SHARE_APP:
        auth = generated_auth()
        print(f"Sign in as {auth[0]!r} with password {auth[1]!r} (new each time this cell runs).")
        serve(app, share=True, auth=auth, prevent_thread_lock=True)
    else:  # loopback only; Colab's proxy shows it to this notebook's user
        serve(app, "127.0.0.1", APP_PORT, inline=False, prevent_thread_lock=True)
        if IN_COLAB:
            from google.colab import output

            output.serve_kernel_port_as_iframe(APP_PORT, height=900)
""",
    ),
    (
        "md",
        """\
## 9. Teach it your taste

Every reward so far is a model someone else trained. This one is yours
([details]({docs}/preferences/)):

1. **Rate** in the app above: its **Rate** tab shows two images the served generator made for an
   idea, from two prompts and the same seed. Pick the better one (keys **1** and **2**, **t** a
   tie, **x** both bad, **s** skip). Ten choices are the least a fit takes; 50-100 make a reward
   worth training on.
2. **Fit** a reward to your choices: the next cell runs `promptrl prefs fit` on the app's
   ratings and reports how often the fitted reward agrees with choices it did not see.
3. **Train** a generator on it: `{type: preference, path: my-taste}` as the reward.
4. **Check** the result with `promptrl eval` against a judge it was not trained on (the
   aesthetic predictor): a personal reward can be gamed like any other.

In tiny mode the images are noise, so a simulated rater who prefers redder images rates 40 pairs
for you. The app's own **Fit my reward** and **Train on my reward** buttons do steps 2 and 3 too.
""",
    ),
    (
        "code",
        """\
from PIL import ImageStat

from promptrl.cli import main as promptrl_cli
from promptrl.prefs.store import PreferenceStore
from promptrl.rundir import preference_paths

TASTE_DIR = "my-taste"  # the fitted reward: head.safetensors, head.json, fit.png


def redness(image):
    r, g, b = ImageStat.Stat(image.convert("RGB")).mean
    return r - (g + b) / 2


if MODE == "tiny" and LAUNCH_APP:  # noise images: a simulated rater with a taste for red
    for _ in range(40):
        token, shown = app.rating.next_round(None)
        a, b = (redness(image) for image in shown.images)
        app.rating.choose(token, "a" if a > b else "b", "local")

db, images = preference_paths(None, APP_RUNS)
rated = 0
if db.exists():
    store = PreferenceStore(db, images)
    rated = store.count()
    store.close()
# the same as `promptrl prefs fit --runs-dir runs/app --out my-taste --preset <MODE>` in a terminal
FITTED = rated >= 10 and promptrl_cli(["prefs", "fit", "--runs-dir", APP_RUNS, "--out", TASTE_DIR, "--preset", MODE]) == 0
if FITTED:
    display(Image(filename=f"{TASTE_DIR}/fit.png", width=768))
else:
    print(f"{rated} choice(s) rated: rate at least 10 pairs in the app's Rate tab, then run this cell again.")
""",
    ),
    (
        "code",
        """\
TASTE_STEPS = None  # PPO steps on your reward; None: as the run above (8 in tiny mode)
if FITTED:
    if LAUNCH_APP and app is not None:  # the app's models out of the GPU first (run its cell again to rate more)
        app.close()
        app.rating.close()
        app = None
        gc.collect()
        torch.cuda.empty_cache()
    # `promptrl train --preset <MODE> --set 'rewards.terms=[{type: preference, path: my-taste}]'`
    taste_rewards = dataclasses.replace(config.rewards, terms=[{"type": "preference", "path": TASTE_DIR}])
    taste_config = dataclasses.replace(
        config,
        rewards=taste_rewards,
        output_dir=f"{config.output_dir}-taste",
        steps=TASTE_STEPS or (8 if MODE == "tiny" else config.steps),
    )
    # tiny mode trained on four ideas, too few to hold any out: the bundled ideas here
    taste = PromptTrainer(taste_config, ideas="bundled" if MODE == "tiny" else IDEAS, overwrite=True)
    taste_history = taste.train()
    print(f"reward/total/mean: {taste_history[0]['reward/total/mean']:.3f} -> {taste_history[-1]['reward/total/mean']:.3f}")
    taste = None
""",
    ),
    (
        "code",
        """\
if FITTED:
    # `promptrl eval --model runs/<MODE>-taste --judges aesthetic`: held-out ideas, the start model
    # against the tuned one, scored by your reward and by judges it was not trained on
    promptrl_cli(["eval", "--model", taste_config.output_dir, "--judges", "aesthetic"])
    display(Markdown(Path(taste_config.output_dir, "eval", "eval.md").read_text()))
""",
    ),
]

# --------------------------------------------------------------------------- sentiment_gpt2

SENTIMENT_CELLS = [
    (
        "md",
        """\
# GPT-2 learns to write positive movie reviews

{badge}

The seed's own example (trl's `04-gpt2-sentiment-ppo-training`), with `trl` replaced by
`promptrl`. GPT-2 continues the first few words of movie reviews; a sentiment classifier reads
each review and its positive logit is the reward; PPO, with a KL penalty against the starting
model, teaches GPT-2 to write reviews the classifier finds positive.

Two modes:
- **`gpt2-imdb`** (a GPU is best): `lvwerra/gpt2-imdb` writes, `lvwerra/distilbert-imdb`
  judges, queries come from IMDB (`datasets`), with the seed's settings.
- **`tiny`** (CPU, offline, under a minute): a tiny random GPT-2 and a tiny random classifier
  built locally, queries from the bundled review openings. "Positive" then means whatever the
  random classifier likes, but the loop is the same and the reward still rises.
""",
    ),
    ("md", "## 1. Install, check the GPU"),
    ("code", SETUP),
    ("code", GPU_CHECK),
    (
        "md",
        """\
## 2. Parameters

The seed's settings, with two changes: minibatches of 16 instead of one sample (one-sample
minibatches were a defect of the seed), and responses sampled in batches per query length.
""",
    ),
    (
        "params",
        """\
MODE = "gpt2-imdb" if torch.cuda.is_available() else "tiny"
SEED = 0
SETTINGS = {
    "gpt2-imdb": {
        "steps": 79,  # PPO steps of 256 reviews: the seed's 20,000 samples
        "txt_in_min_len": 2, "txt_in_max_len": 8,  # query tokens
        "txt_out_min_len": 4, "txt_out_max_len": 16,  # response tokens
        "ppo": {"batch_size": 256, "forward_batch_size": 16, "mini_batch_size": 16, "ppo_epochs": 4,
                "lr": 1.41e-5, "init_kl_coef": 0.2, "target": 6, "horizon": 10000, "gamma": 1,
                "lam": 0.95, "cliprange": 0.2, "cliprange_value": 0.2, "vf_coef": 0.1},
    },
    "tiny": {
        "steps": 30,
        "txt_in_min_len": 2, "txt_in_max_len": 8,
        "txt_out_min_len": 8, "txt_out_max_len": 8,
        "ppo": {"batch_size": 64, "forward_batch_size": 64, "mini_batch_size": 16, "ppo_epochs": 4,
                "lr": 3e-3, "init_kl_coef": 0.2, "target": 6, "horizon": 10000, "gamma": 1,
                "lam": 0.95, "cliprange": 0.2, "cliprange_value": 0.2, "vf_coef": 0.1},
    },
}
N_EVAL = 64  # reviews in the before/after comparison
""",
    ),
    ("md", "## 3. Models and queries"),
    (
        "code",
        """\
from transformers import AutoTokenizer

from promptrl.gpt2 import GPT2HeadWithValueModel, respond_to_batch
from promptrl.ppo import PPOTrainer
from promptrl.ppo.sentiment import (
    CLASSIFIER_NAME,
    LM_NAME,
    SentimentReward,
    load_reviews,
    respond_by_length,
    review_queries,
)
from promptrl.standins.sentiment import build_tiny_sentiment

cfg = SETTINGS[MODE]
if MODE == "tiny":
    tiny = build_tiny_sentiment()  # built once, then cached
    lm_name, classifier_name, reviews = tiny["lm"], tiny["classifier"], load_reviews("bundled")
else:
    lm_name, classifier_name, reviews = LM_NAME, CLASSIFIER_NAME, load_reviews("imdb")

torch.manual_seed(SEED)
gpt2_model = GPT2HeadWithValueModel.from_pretrained(lm_name)
gpt2_model_ref = GPT2HeadWithValueModel.from_pretrained(lm_name)
gpt2_tokenizer = AutoTokenizer.from_pretrained(lm_name)
sentiment = SentimentReward(classifier_name)  # texts -> positive logits
ppo_trainer = PPOTrainer(gpt2_model, gpt2_model_ref, gpt2_tokenizer, **cfg["ppo"])

queries = review_queries(reviews, gpt2_tokenizer, cfg["txt_in_min_len"], cfg["txt_in_max_len"], seed=SEED)
print(f"{len(queries)} queries, e.g. {[gpt2_tokenizer.decode(q) for q in queries[:3]]}")
""",
    ),
    (
        "md",
        """\
The seed's API, one query at a time: `respond_to_batch` samples a continuation, any number
can be its reward, and `step` runs one PPO update on (query, response, reward) triplets.
Training below does the same with whole batches.
""",
    ),
    (
        "code",
        """\
query_tensor = gpt2_tokenizer.encode("this movie was", return_tensors="pt")
response_tensor = respond_to_batch(gpt2_model, query_tensor, txt_len=cfg["txt_out_max_len"])
text = gpt2_tokenizer.decode(query_tensor[0]) + gpt2_tokenizer.decode(response_tensor[0])
print(repr(text), "-> positive logit", round(sentiment([text]).item(), 3))
""",
    ),
    ("md", "## 4. Train"),
    (
        "code",
        """\
import numpy as np
from tqdm.auto import tqdm

rng = np.random.default_rng(SEED)
batch_size = cfg["ppo"]["batch_size"]
log = []
for _ in tqdm(range(cfg["steps"])):
    batch = [queries[i] for i in rng.choice(len(queries), batch_size, replace=False)]
    lengths = rng.integers(cfg["txt_out_min_len"], cfg["txt_out_max_len"] + 1, size=batch_size)
    responses = respond_by_length(gpt2_model, batch, lengths.tolist())
    texts = [gpt2_tokenizer.decode(q) + gpt2_tokenizer.decode(r) for q, r in zip(batch, responses)]
    rewards = sentiment(texts)
    stats = ppo_trainer.step(batch, responses, list(rewards))
    log.append({"reward": rewards.mean().item(), "kl": stats["objective/kl"],
                "kl_coef": stats["objective/kl_coef"]})
REWARD_HISTORY = [row["reward"] for row in log]
""",
    ),
    (
        "code",
        """\
import matplotlib.pyplot as plt

fig, (ax_reward, ax_kl) = plt.subplots(1, 2, figsize=(12, 3.5))
ax_reward.plot([row["reward"] for row in log])
ax_reward.set_title("mean positive logit (reward)")
ax_kl.plot([row["kl"] for row in log], color="tab:red")
ax_kl.set_title("KL to the starting model (nats / response)")
for ax in (ax_reward, ax_kl):
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
plt.show()
""",
    ),
    (
        "md",
        """\
## 5. Before and after

The same review openings, continued by the starting model and by the trained one with the
same sampling seed.
""",
    ),
    (
        "code",
        """\
import json

import pandas as pd
from IPython.display import display

eval_queries = [queries[i] for i in np.random.default_rng(SEED + 1).choice(len(queries), N_EVAL, replace=False)]
results = {}
for name, model in (("before", gpt2_model_ref), ("after", gpt2_model)):
    torch.manual_seed(SEED)
    responses = respond_by_length(model, eval_queries, cfg["txt_out_max_len"])
    results[name] = [gpt2_tokenizer.decode(r) for r in responses]
    results[f"reward {name}"] = sentiment(
        [gpt2_tokenizer.decode(q) + text for q, text in zip(eval_queries, results[name])]
    ).tolist()
table = pd.DataFrame({"query": [gpt2_tokenizer.decode(q) for q in eval_queries], **results})
display(table.head(8))
print(table[["reward before", "reward after"]].mean())

summary = {
    "first": float(np.mean(REWARD_HISTORY[:3])),  # mean reward of the first and last 3 steps
    "last": float(np.mean(REWARD_HISTORY[-3:])),
    "before": float(table["reward before"].mean()),
    "after": float(table["reward after"].mean()),
}
print("REWARD_RISE", json.dumps(summary))
""",
    ),
    (
        "md",
        """\
## 6. Save

`save_pretrained` writes the GPT-2 weights, the value head and (separately) the tokenizer;
`GPT2HeadWithValueModel.from_pretrained` reloads both.
""",
    ),
    (
        "code",
        """\
save_dir = f"gpt2-positive-{MODE}"
gpt2_model.save_pretrained(save_dir)
gpt2_tokenizer.save_pretrained(save_dir)
reloaded = GPT2HeadWithValueModel.from_pretrained(save_dir)
print(save_dir, "->", type(reloaded).__name__)
""",
    ),
]


def _ruff_formatted(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`nb` as `ruff format` (the project's settings) leaves it, so `make lint`, which formats
    notebooks too, finds nothing to change in what this script writes."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        raise SystemExit("build_notebooks.py needs ruff (pip install ruff) to format the cells")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "notebook.ipynb"
        nbformat.write(nb, path)
        subprocess.run(
            [ruff, "format", "--quiet", "--config", str(HERE.parent / "pyproject.toml"), str(path)], check=True
        )
        return nbformat.read(path, as_version=4)


def notebook(cells: list[tuple[str, str]], name: str) -> nbformat.NotebookNode:
    url = COLAB.format(repo=REPO, name=name)
    nb = new_notebook()
    for i, (kind, source) in enumerate(cells):
        source = source.replace("{badge}", BADGE.format(url=url)).replace("{docs}", DOCS_URL).rstrip("\n")
        cell_id = f"{Path(name).stem.replace('_', '-')}-{i:02d}"
        if kind == "md":
            nb.cells.append(new_markdown_cell(source, id=cell_id))
        else:
            cell = new_code_cell(source, id=cell_id)
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "accelerator": "GPU",
        "colab": {"provenance": [], "gpuType": "T4"},
    }
    nbformat.validate(nb)
    return _ruff_formatted(nb)


NOTEBOOKS = {"promptrl_colab.ipynb": COLAB_CELLS, "sentiment_gpt2.ipynb": SENTIMENT_CELLS}
"""Each notebook this script writes, by file name, and its cells."""


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nbformat.write(notebook(cells, name), HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
