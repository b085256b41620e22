"""The Gradio app, served on 127.0.0.1 and driven through `gradio_client` as any API user would.

One server (tiny preset, CPU) serves the whole module. A custom reward that fails for ideas
mentioning "explode" is injected through `build_app(extra_rewards=...)`, so the failing-reward
paths can be exercised without breaking every other call.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import threading  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402

import pytest  # noqa: E402
from conftest import TRAIN_OVERRIDES

pytestmark = pytest.mark.slow

ENDPOINTS = {
    "/generate",
    "/render",
    "/train_start",
    "/train_stop",
    "/train_poll",
    "/download",
    "/model_info",
    "/evaluate",
    "/rate_next",
    "/rate_a",
    "/rate_b",
    "/rate_c",
    "/rate_d",
    "/rate_tie",
    "/rate_both_bad",
    "/rate_skip",
    "/rate_fit",
    "/rate_train",
}
WEIGHTS = (1.0, 1.0, 0.5)  # aesthetic, similarity, penalty


def picky(images, prompts, ideas):
    """Mean brightness; raises for ideas that mention 'explode' (the failing-reward case)."""
    if any("explode" in idea for idea in ideas):
        raise RuntimeError("boom")
    return images.mean(dim=(1, 2, 3))


@pytest.fixture(scope="module")
def served(tmp_path_factory, free_port):
    """(demo, url) of the app serving the tiny preset on a free port."""
    from promptrl.app import build_app, serve

    demo = build_app(
        "tiny", runs_dir=tmp_path_factory.mktemp("app-runs"), device="cpu", extra_rewards={"picky": (0.5, picky)}
    )
    port = free_port()
    serve(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    try:
        yield demo, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def app_url(served):
    return served[1]


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def generate(client, ideas="a lighthouse in a storm\na cat astronaut", n=2, max_tokens=12, seed=0):
    return client.predict(ideas, n, 1.0, 1.0, max_tokens, seed, api_name="/generate")


def render(client, table, rows="", weights=WEIGHTS):
    return client.predict(table, rows, 0, *weights, api_name="/render")


def test_every_event_has_an_api_name(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ENDPOINTS


def test_generate_gives_n_prompts_per_idea_from_both_models(client):
    table, tuned, start, render_table, status = generate(client)
    assert table["headers"] == ["idea", "sample", "fine-tuned prompt", "starting-model prompt"]
    assert [row[:2] for row in table["data"]] == [
        ["a lighthouse in a storm", 1],
        ["a lighthouse in a storm", 2],
        ["a cat astronaut", 1],
        ["a cat astronaut", 2],
    ]
    assert tuned.split("\n") == [row[2] for row in table["data"]]
    assert start.split("\n") == [row[3] for row in table["data"]]
    assert render_table["data"] == table["data"]
    assert status.startswith("4 prompt(s) from each model")
    assert generate(client)[0] == table  # the seed fixes the samples


@pytest.mark.parametrize(
    "ideas, n, max_tokens, expected",
    [
        ("", 2, 12, "at least one idea"),
        ("  \n\n ", 2, 12, "at least one idea"),
        ("\n".join(f"idea {i}" for i in range(17)), 1, 12, "too many"),
        ("x" * 5000, 1, 12, "characters long"),
        ("a cat", 1, 100000, "Max tokens must be between 1 and 128"),
        ("a cat", 1, 0, "Max tokens must be between 1 and 128"),
        ("a cat", 500, 12, "Prompts per idea must be between 1 and 8"),
    ],
)
def test_generate_refuses_bad_input_politely(client, ideas, n, max_tokens, expected):
    *untouched, status = generate(client, ideas, n, max_tokens)
    assert status.startswith("⚠️") and expected in status and "Traceback" not in status
    assert all(out == {"__type__": "update"} for out in untouched)  # outputs left as they were
    assert generate(client, "a fox", 1)[-1].startswith("1 prompt(s)")  # still serving


def test_render_and_score_captions_every_reward_component(client):
    table = generate(client)[0]
    tuned, start, scores, status = render(client, table, "1,3-4")
    assert len(tuned) == len(start) == 3 and status.startswith("Rendered 3 row(s)")
    for image in tuned + start:
        assert os.path.exists(image["image"])
        numbers, prompt = image["caption"].split("\n")
        assert numbers.startswith("reward ") and all(
            f"{n} " in numbers for n in ("aesthetic", "similarity", "penalty", "picky")
        )
    assert [c["caption"].split("\n")[1] for c in tuned] == [table["data"][i][2] for i in (0, 2, 3)]
    rows = scores["data"]
    assert scores["headers"] == [
        "row",
        "model",
        "reward",
        "aesthetic",
        "similarity",
        "penalty",
        "picky",
        "seed",
        "idea",
        "prompt",
    ]
    assert [r[:2] for r in rows] == [
        [1, "fine-tuned"],
        [3, "fine-tuned"],
        [4, "fine-tuned"],
        [1, "starting"],
        [3, "starting"],
        [4, "starting"],
    ]
    assert [r[7] for r in rows[:3]] == [r[7] for r in rows[3:]]  # same noise for both models' prompts
    total, (aesthetic, similarity, penalty, custom) = rows[0][2], rows[0][3:7]
    assert total == pytest.approx(aesthetic + similarity + 0.5 * penalty + 0.5 * custom, abs=1e-5)
    # A zero weight leaves the term out.
    _, _, scores, _ = render(client, table, "1", weights=(1.0, 0.0, 0.0))
    assert scores["headers"][2:5] == ["reward", "aesthetic", "picky"]


def test_a_failing_reward_is_reported_and_the_images_still_shown(client):
    table = {
        "headers": ["idea", "sample", "fine-tuned prompt", "starting-model prompt"],
        "data": [["things explode", 1, "a big bang", "fireworks"]],
    }
    tuned, start, scores, status = render(client, table)
    assert status.startswith("⚠️ Scoring failed") and "'picky' raised RuntimeError: boom" in status
    assert [g["caption"] for g in tuned + start] == ["(not scored)\na big bang", "(not scored)\nfireworks"]
    assert render(client, generate(client, "a fox", 1)[0])[-1].startswith("Rendered 1 row(s)")


@pytest.mark.parametrize(
    "table, rows, weights, expected",
    [
        (
            {"headers": ["idea", "sample", "fine-tuned prompt", "starting-model prompt"], "data": []},
            "",
            WEIGHTS,
            "Nothing to render",
        ),
        (
            {"headers": ["idea", "sample", "fine-tuned prompt", "starting-model prompt"], "data": [["", "", "", ""]]},
            "",
            WEIGHTS,
            "Nothing to render",
        ),
        (
            {
                "headers": ["idea", "sample", "fine-tuned prompt", "starting-model prompt"],
                "data": [["a cat", 1, "cat " * 2000, "a cat"]],
            },
            "",
            WEIGHTS,
            "characters long",
        ),
        (None, "99", WEIGHTS, "outside the table's rows"),
        (None, "1;2", WEIGHTS, "Rows look like"),
    ],
)
def test_render_refuses_bad_requests_politely(client, table, rows, weights, expected):
    table = table or generate(client, "a fox", 1)[0]
    status = render(client, table, rows, weights)[-1]
    assert status.startswith("⚠️") and expected in status


def test_out_of_range_slider_values_are_refused_with_gradios_message(client):
    """Gradio 6 checks slider bounds before the handler runs; the app keeps serving."""
    from gradio_client.exceptions import AppError

    table = generate(client, "a fox", 1)[0]
    with pytest.raises(AppError, match="greater than maximum value 5"):
        render(client, table, "1", weights=(9.0, 1.0, 1.0))
    with pytest.raises(AppError, match="greater than maximum value 2"):
        client.predict("a fox", 1, 50.0, 1.0, 8, 0, api_name="/generate")
    assert render(client, table, "1")[-1].startswith("Rendered 1 row(s)")


def test_evaluate_tab_compares_the_served_models(client):
    table, grid, status = client.predict("a lighthouse in a storm\na red fox", 2, 0, api_name="/evaluate")
    assert "2 idea(s) x 2 sample(s)" in status
    assert "| total |" in table and "| judge/pickscore |" in table and "| picky |" in table
    # the app serves the tiny policy as both models: every pair ties
    assert "+0 [+0, +0]" in table and "50% [50%, 50%]" in table
    assert grid and os.path.exists(grid if isinstance(grid, str) else grid["path"])
    again = client.predict("a lighthouse in a storm\na red fox", 2, 0, api_name="/evaluate")
    assert again[0] == table
    held = client.predict("", 1, 0, api_name="/evaluate")
    assert "16 idea(s) x 1 sample(s)" in held[2]
    for ideas, samples, expected in (("a fox", 9, "between 1 and 4"), ("x" * 300, 1, "characters")):
        assert expected in client.predict(ideas, samples, 0, api_name="/evaluate")[2]


def test_model_tab_says_what_is_loaded_where(client):
    info = client.predict(api_name="/model_info")
    for text in (
        "Prompt generator",
        "Starting model",
        "StableDiffusionPipeline",
        "on `cpu`",
        "aesthetic",
        "similarity",
        "penalty",
        "picky",
    ):
        assert text in info


def wait_for_run(client, timeout=180.0) -> tuple:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll = client.predict(api_name="/train_poll")
        if any(word in poll[0] for word in ("finished", "failed", "stopped")):
            return poll
        time.sleep(0.5)
    raise AssertionError(f"training did not end within {timeout} s: {poll[0]}")


def test_a_short_training_run_finishes_with_plots_samples_and_a_checkpoint(served, client, tmp_path):
    ideas = tmp_path / "ideas.txt"
    ideas.write_text("a red fox\na blue boat\n")
    from gradio_client import handle_file

    args = ("tiny", None, handle_file(str(ideas)), 2, *WEIGHTS, TRAIN_OVERRIDES)
    assert client.predict(*args, api_name="/train_start")[1].startswith("Started a run of 2 steps")
    assert "already going" in client.predict(*args, api_name="/train_start")[1]  # one run at a time
    status, rewards, kl, samples, timer = wait_for_run(client)
    assert status.startswith("**Training:** finished: 2 of 2 steps"), status
    assert timer["active"] is False
    assert {row[2] for row in rewards["data"]} == {"total", "aesthetic", "similarity", "penalty", "picky"}
    assert sorted({row[0] for row in rewards["data"]}) == [1, 2]
    assert {row[2] for row in kl["data"]} == {"KL", "KL coefficient"} and len(kl["data"]) == 4
    captions = [s["caption"] for s in samples]
    assert sum(c.startswith("start ·") for c in captions) == 2 and "batch at step 2" in captions
    assert sum(c.startswith("final ·") for c in captions) == 2
    path, message = client.predict(api_name="/download")
    assert path.endswith("-model.zip") and message.startswith("Zipped")
    runs = served[0].training.runs_dir  # the server's copy: inside the runs dir, the only zip there
    assert [p.name for p in (runs / ".downloads").iterdir()] == [os.path.basename(path)]
    assert {"config.json", "value_head.safetensors"} <= set(zipfile.ZipFile(path).namelist())
    assert client.predict(api_name="/train_stop") == "No run is going."


def test_a_trained_run_is_served_against_its_starting_model(served):
    from promptrl.app import build_app

    demo = served[0]
    run_dir = demo.training.output_dir
    if run_dir is None or not (run_dir / "model").exists():
        pytest.skip("needs the training run of the test above")
    tiny_policy = demo.models.policy_dir
    for given, served_model in ((run_dir, run_dir / "model"), (run_dir / "checkpoint-000001", None)):
        app = build_app(model_dir=str(given), preload=False)
        assert app.models.policy_dir == str(served_model or given) and app.models.start_dir == tiny_policy
        assert app.models.start_note == "recorded in promptrl.json" and not app.models.same_model
    (run_dir / "checkpoint-000001" / "promptrl.json").unlink()  # a run without the record: its config
    app = build_app(model_dir=str(run_dir / "checkpoint-000001"), preload=False)
    assert (app.models.start_dir, app.models.start_note) == (tiny_policy, "the run's config.yaml")
    assert build_app(model_dir=str(run_dir), base_dir=str(run_dir / "model"), preload=False).models.same_model


def test_training_failures_are_reported_and_the_app_keeps_serving(client, tmp_path):
    no_weights = client.predict("tiny", None, None, 2, 0, 0, 0, TRAIN_OVERRIDES, api_name="/train_start")[1]
    assert no_weights.startswith("⚠️ Every reward weight is zero")
    bad_key = client.predict("tiny", None, None, 2, *WEIGHTS, "nonsense=3", api_name="/train_start")[1]
    assert bad_key.startswith("⚠️ The key 'nonsense' is not among the settings a visitor may change")
    from gradio_client import handle_file

    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert (
        "at least one idea"
        in client.predict("tiny", None, handle_file(str(empty)), 2, *WEIGHTS, TRAIN_OVERRIDES, api_name="/train_start")[
            1
        ]
    )
    boom = tmp_path / "boom.txt"
    boom.write_text("things explode\n")
    client.predict("tiny", None, handle_file(str(boom)), 2, *WEIGHTS, TRAIN_OVERRIDES, api_name="/train_start")
    status = wait_for_run(client)[0]
    assert status == "**Training:** failed: reward 'picky' raised RuntimeError: boom"
    assert generate(client, "a fox", 1)[-1].startswith("1 prompt(s)")


def test_the_train_tab_trains_with_grpo(served, client):
    """The Algorithm list: grpo, with its reward baseline none; no reference, so no KL."""
    args = ("tiny", None, None, 2, *WEIGHTS, TRAIN_OVERRIDES, "grpo")
    assert client.predict(*args, api_name="/train_start")[1].startswith("Started a run of 2 steps")
    status, rewards, kl, samples, timer = wait_for_run(client)
    assert status.startswith("**Training:** finished: 2 of 2 steps"), status
    assert sorted({row[0] for row in rewards["data"]}) == [1, 2]
    assert {(row[1], row[2]) for row in kl["data"]} == {(0.0, "KL coefficient")}  # beta 0: no KL to plot
    history = served[0].training.history
    assert "grpo/loss/policy" in history[-1] and "ppo/loss/value" not in history[-1]
    assert not (served[0].training.output_dir / "model" / "value_head.safetensors").exists()


def test_thirty_concurrent_clients_all_get_prompts(app_url):
    from gradio_client import Client

    results, errors = {}, []

    def one(i):
        try:
            results[i] = generate(Client(app_url, verbose=False), f"idea number {i}", 2, 8, seed=i)
        except Exception as err:  # collected and reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]  # within the queue's 64
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and len(results) == 30
    for i, (table, *_, status) in results.items():
        assert status.startswith("2 prompt(s)") and {row[0] for row in table["data"]} == {f"idea number {i}"}
