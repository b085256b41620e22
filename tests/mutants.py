"""Mutation testing of the PPO code: plant one bug at a time, check that the PPO tests notice.

    python tests/mutants.py [--jobs 2] [--only NAME ...]      (or: make mutants)

Each mutant replaces one exact snippet of the PPO code (`promptrl/ppo/`: the trainer, `core.py`,
the sampling recorder in `sampling.py`) in a copy of the package (the working tree is never
touched), then runs the fast PPO tests against the copy (the two-process test instead, for
the mutants only two processes can show).
A mutant the tests do not fail on "survives": either a test is missing, or the mutant does not
change behaviour (an equivalent mutant, which belongs in EQUIVALENT with the reason).
Exit status 1 when a non-equivalent mutant survives.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_ppo_math.py", "tests/test_core.py", "tests/test_ppo.py"]


DISTRIBUTED = ("tests/test_distributed.py::test_two_processes_stay_in_sync",)
GROUP = ("tests/test_group.py",)
"""GRPO's and RLOO's tests (hand-computed numbers, the trainers' wiring, learning)."""
DISTRIBUTED_GROUP = ("tests/test_distributed.py::test_two_processes_agree_on_group_statistics",)
"""The two-process test (slow: about 10 s a run), for the mutants only two processes can show."""


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...] = ()
    """The tests to run (default: the fast PPO tests, `TESTS`)."""


def m(name: str, file: str, original: str, replacement: str, tests: tuple[str, ...] = ()) -> Mutant:
    return Mutant(name, f"promptrl/ppo/{file}", original, replacement, tests)


MUTANTS = [
    # rewards: the per-token KL penalty and where the score lands
    m(
        "kl sign flipped",
        "trainer.py",
        "kl = (logprobs - ref_logprobs) * mask",
        "kl = (ref_logprobs - logprobs) * mask",
    ),
    m(
        "penalty sign flipped",
        "trainer.py",
        "non_score = -self.kl_ctl.value * kl",
        "non_score = self.kl_ctl.value * kl",
    ),
    m(
        "score on the last column, not the last real token",
        "trainer.py",
        "last = mask.sum(1).long() - 1",
        "last = torch.full_like(mask.sum(1).long(), mask.shape[1] - 1)",
    ),
    m(
        "score on the first token",
        "trainer.py",
        "last = mask.sum(1).long() - 1",
        "last = mask.sum(1).long() * 0",
    ),
    m(
        "reference log-probs from the policy",
        "trainer.py",
        "ref_lp, _, _ = self._forward(self.ref_model, batch)",
        "ref_lp, _, _ = self._forward(policy, batch)",
    ),
    # the losses
    m(
        "value clipping removed",
        "core.py",
        "vf_loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)",
        "vf_loss = 0.5 * masked_mean(vf_losses1, mask)",
    ),
    m(
        "min instead of max in the clipped objective",
        "core.py",
        "pg_loss = masked_mean(torch.max(pg_losses1, pg_losses2), mask)",
        "pg_loss = masked_mean(torch.min(pg_losses1, pg_losses2), mask)",
    ),
    m(
        "clip range ten times too wide",
        "core.py",
        "torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)",
        "torch.clamp(ratio, 1.0 - 10 * cliprange, 1.0 + 10 * cliprange)",
    ),
    m(
        "value clip range ignored",
        "core.py",
        "values - cliprange_value, values + cliprange_value",
        "values - 1.0, values + 1.0",
    ),
    m(
        "vf_coef ignored",
        "core.py",
        "loss = pg_loss + vf_coef * vf_loss",
        "loss = pg_loss + vf_loss",
    ),
    m(
        "cliprange option ignored (its default used)",
        "trainer.py",
        "            cfg.cliprange,\n",
        "            0.2,\n",
    ),
    m(
        "cliprange_value option ignored (its default used)",
        "trainer.py",
        "            cfg.cliprange_value,\n",
        "            0.2,\n",
    ),
    m(
        "vf_coef option ignored (its default used)",
        "trainer.py",
        "            cfg.vf_coef,\n",
        "            0.1,\n",
    ),
    m(
        "mixed_precision option ignored",
        "trainer.py",
        "Accelerator(mixed_precision=self.config.mixed_precision)",
        "Accelerator()",
    ),
    m(
        "ratio from the wrong difference",
        "core.py",
        "    log_ratio = logprobs - old_logprobs\n    ratio = torch.exp(log_ratio)\n    pg_losses1",
        "    log_ratio = old_logprobs - logprobs\n    ratio = torch.exp(log_ratio)\n    pg_losses1",
    ),
    # advantages
    m(
        "advantages not whitened",
        "trainer.py",
        "advantages = whiten(advantages, mask, global_batch=True)",
        "advantages = advantages",
    ),
    m("whiten_rewards ignored", "trainer.py", "if cfg.whiten_rewards:", "if False:"),
    m(
        "gamma and lam swapped",
        "trainer.py",
        "compute_advantages(rollout.values, rewards, mask, cfg.gamma, cfg.lam)",
        "compute_advantages(rollout.values, rewards, mask, cfg.lam, cfg.gamma)",
    ),
    m(
        "GAE without lambda",
        "core.py",
        "last_gae = (delta + gamma * lam * last_gae) * mask[:, t]",
        "last_gae = (delta + gamma * last_gae) * mask[:, t]",
    ),
    m(
        "GAE without gamma in the TD error",
        "core.py",
        "delta = rewards[:, t] + gamma * next_value - values[:, t]",
        "delta = rewards[:, t] + next_value - values[:, t]",
    ),
    m(
        "GAE: padding values leak",
        "core.py",
        "    values = values * mask\n    rewards = rewards * mask",
        "    rewards = rewards * mask",
    ),
    m(
        "returns without the values",
        "core.py",
        "returns = advantages + values",
        "returns = advantages",
    ),
    m(
        "whiten without scaling",
        "core.py",
        "out = (values - mean) * torch.rsqrt(var + 1e-8)",
        "out = values - mean",
    ),
    m("whiten shift_mean inverted", "core.py", "if not shift_mean:", "if shift_mean:"),
    m("whiten leaves padding", "core.py", "    return out * mask\n", "    return out\n"),
    m("biased variance", "core.py", "return sq / (count - 1)", "return sq / count"),
    # KL controllers
    m(
        "adaptive KL error unclipped",
        "core.py",
        "error = min(max(current_kl / self.target - 1, -0.2), 0.2)",
        "error = current_kl / self.target - 1",
    ),
    m(
        "adaptive KL moves the wrong way",
        "core.py",
        "self.value *= 1 + error * n_steps / self.horizon",
        "self.value *= 1 - error * n_steps / self.horizon",
    ),
    m(
        "KL controller sees one step",
        "trainer.py",
        "self.kl_ctl.update(global_kl, len(queries) * self.accelerator.num_processes)",
        "self.kl_ctl.update(global_kl, 1)",
    ),
    m(
        "KL controller fed the mean score",
        "trainer.py",
        "global_kl = self.accelerator.reduce(kl.sum(1).mean()",
        "global_kl = self.accelerator.reduce(scores.mean()",
    ),
    # score scaling
    m("score_clip ignored", "trainer.py", "if cfg.score_clip is not None:", "if False:"),
    m(
        "use_score_norm ignored",
        "trainer.py",
        "scores = (scores - mean) / std if cfg.use_score_norm else scores / std",
        "scores = scores / std",
    ),
    m("use_score_scaling ignored", "trainer.py", "if cfg.use_score_scaling:", "if False:"),
    m(
        "score std floor removed",
        "trainer.py",
        "if std < SCORE_STD_MIN * max(1.0, abs(mean)):",
        "if False:",
    ),
    m(
        "running mean not weighted by count",
        "core.py",
        "self.mean += delta * n / tot_count",
        "self.mean += delta",
    ),
    # minibatching, accumulation, early stopping, the ratio guard, clipping
    m("gradients never zeroed", "trainer.py", "        self.optimizer.zero_grad()\n", "        pass\n"),
    m(
        "accumulated loss not scaled",
        "trainer.py",
        "self.accelerator.backward(loss * scale)",
        "self.accelerator.backward(loss)",
    ),
    m(
        "a short last group is not stepped",
        "trainer.py",
        "if trained:  # the group's last step",
        "if trained and len(group) == gas:  # the group's last step",
    ),
    m("accumulation ignored", "trainer.py", "gas = cfg.gradient_accumulation_steps", "gas = 1"),
    m(
        "early stopping inverted",
        "trainer.py",
        "approxkl > 1.5 * cfg.target_kl",
        "approxkl < 1.5 * cfg.target_kl",
    ),
    m(
        "early stopping only at the end of an epoch",
        "trainer.py",
        "                    if stopped:\n                        break\n",
        "",
    ),
    m(
        "ratio guard inverted",
        "trainer.py",
        "ratio > cfg.ratio_threshold",
        "ratio < cfg.ratio_threshold",
    ),
    m(
        "skipped minibatch still trained",
        "trainer.py",
        '            return stats, "skip"',
        "            pass",
    ),
    m(
        "gradient clipping removed",
        "trainer.py",
        "self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)",
        "pass",
    ),
    m("mini_batch_size ignored", "batch.py", "size = min(size, len(perm))", "size = len(perm)"),
    m("group_by_length ignored", "batch.py", "if group_by_length:", "if False:"),
    m(
        "grouped minibatches not weighted by their tokens",
        "trainer.py",
        "weight = sum(packed.r_lens[i] for i in idx) / mean_tokens if group_by_length else 1.0",
        "weight = 1.0",
    ),
    m("forward_batch_size ignored", "trainer.py", "fbs = self.config.forward_batch_size", "fbs = n"),
    m(
        "one epoch only",
        "trainer.py",
        "self._optimize(packed, targets, cfg.ppo_epochs, cfg.group_by_length)",
        "self._optimize(packed, targets, 1, cfg.group_by_length)",
    ),
    # forward pass: alignment, positions, temperature
    m(
        "temperature ignored",
        "trainer.py",
        "logits = logits / self.config.temperature",
        "logits = logits",
    ),
    m(
        "position ids dropped",
        "trainer.py",
        "position_ids=batch.position_ids[:, :-1],",
        "position_ids=None,",
    ),
    m(
        "log-probs of the token each position sees, not the next one",
        "trainer.py",
        "batch.input_ids[:, batch.q_len :, None]",
        "batch.input_ids[:, batch.q_len - 1 : -1, None]",
    ),
    m(
        "values shifted by one",
        "trainer.py",
        "values[:, -batch.r_len :]",
        "values[:, -batch.r_len - 1 : -1]",
    ),
    # statistics
    m(
        "clipfrac counts the unclipped",
        "core.py",
        "(pg_losses2 > pg_losses1).float()",
        "(pg_losses2 < pg_losses1).float()",
    ),
    m(
        "approx KL without the half",
        "core.py",
        '"ppo/policy/approxkl": 0.5 * log_ratio**2,',
        '"ppo/policy/approxkl": log_ratio**2,',
    ),
    m(
        "entropy sign",
        "core.py",
        "return -(all_logprobs.exp() * all_logprobs).sum(-1)",
        "return (all_logprobs.exp() * all_logprobs).sum(-1)",
    ),
    m(
        "value-function clipfrac inverted",
        "core.py",
        "(vf_losses2 > vf_losses1).float()",
        "(vf_losses2 < vf_losses1).float()",
    ),
    # numbers recorded while sampling
    m(
        "recorded values not used",
        "trainer.py",
        'for name in ("logprobs", "values", "entropy"):',
        'for name in ("logprobs", "entropy"):',
    ),
    m(
        "policy pass runs despite the record",
        "trainer.py",
        "if recorded is None:\n                    lp, v, all_lp",
        "if True:\n                    lp, v, all_lp",
    ),
    m("record not checked", "trainer.py", "            check_recorded(recorded, responses)", "            pass"),
    m(
        "recorder ignores the temperature",
        "sampling.py",
        "output[:, -1].float() / self.temperature",
        "output[:, -1].float()",
    ),
    m(
        "recorder values from the first position",
        "sampling.py",
        "hidden = args[0][:, -1]",
        "hidden = args[0][:, 0]",
    ),
    # decisions on the numbers of all processes, not one process's own
    m(
        "KL controller fed the process's own KL",
        "trainer.py",
        'global_kl = self.accelerator.reduce(kl.sum(1).mean(), reduction="mean").item()',
        "global_kl = kl.sum(1).mean().item()",
        DISTRIBUTED,
    ),
    m(
        "advantages whitened per process",
        "trainer.py",
        "advantages = whiten(advantages, mask, global_batch=True)",
        "advantages = whiten(advantages, mask)",
        DISTRIBUTED,
    ),
    m(
        "guards decide on the process's own minibatch",
        "trainer.py",
        "        approxkl, ratio = global_mean(\n"
        '            torch.stack([stats[f"{p}/policy/approxkl"], stats[f"{p}/policy/ratio"]]), weight\n'
        "        ).tolist()",
        '        approxkl, ratio = stats[f"{p}/policy/approxkl"].item(), stats[f"{p}/policy/ratio"].item()',
        DISTRIBUTED,
    ),
    # validation before state moves
    m(
        "scores scaled before the inputs are checked",
        "trainer.py",
        "        queries, responses, raw_scores = self._check_inputs(queries, responses, scores)\n",
        "        self._scale_scores(torch.as_tensor(scores, dtype=torch.float))\n"
        "        queries, responses, raw_scores = self._check_inputs(queries, responses, scores)\n",
    ),
    m(
        "position limit unchecked",
        "batch.py",
        "if len(q) + len(r) > max_positions:",
        "if False:",
    ),
]

MUTANTS += [
    # GRPO and RLOO: advantages
    m("group std not divided", "core.py", "    return advantages / (std + 1e-4)", "    return advantages", GROUP),
    m(
        "group std from the whole batch",
        "core.py",
        "std = groups.std(1).repeat_interleave(group_size)",
        "std = _global_std(scores)",
        GROUP,
    ),
    m("std epsilon removed", "core.py", "    return advantages / (std + 1e-4)", "    return advantages / std", GROUP),
    m(
        "group mean from the whole batch",
        "core.py",
        "advantages = (groups - groups.mean(1, keepdim=True)).flatten()",
        "advantages = (groups - groups.mean()).flatten()",
        GROUP,
    ),
    m(
        "leave-one-out baseline includes the sample",
        "core.py",
        "baseline = (groups.sum(1, keepdim=True) - groups) / (group_size - 1)",
        "baseline = groups.mean(1, keepdim=True)",
        GROUP,
    ),
    m("RLOO normalisation ignored", "core.py", "    if normalize:\n", "    if False:\n", GROUP),
    m("scale_rewards ignored", "group.py", "self.group_size, self.settings.scale_rewards)", "self.group_size)", GROUP),
    m(
        "RLOO KL added to the reward",
        "group.py",
        "rewards = scores - self.settings.beta * kl",
        "rewards = scores + self.settings.beta * kl",
        GROUP,
    ),
    # GRPO and RLOO: losses
    m(
        "GRPO ratio from the wrong difference",
        "core.py",
        "    log_ratio = logprobs - old_logprobs\n    ratio = torch.exp(log_ratio)\n    adv",
        "    log_ratio = old_logprobs - logprobs\n    ratio = torch.exp(log_ratio)\n    adv",
        GROUP,
    ),
    m("k3 sign flipped", "core.py", "delta = ref_logprobs - logprobs", "delta = logprobs - ref_logprobs", GROUP),
    m("GRPO beta ignored", "core.py", "per_token = per_token + beta * kl", "per_token = per_token", GROUP),
    m(
        "GRPO epsilon_high ignored",
        "core.py",
        "losses2 = -adv * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)",
        "losses2 = -adv * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_low)",
        GROUP,
    ),
    m(
        "RLOO epsilon_high ignored",
        "core.py",
        "losses2 = -advantages * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)",
        "losses2 = -advantages * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_low)",
        GROUP,
    ),
    m(
        "grpo loss type as bnpo",
        "core.py",
        "loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()",
        "loss = total / mask.sum().clamp(min=1)",
        GROUP,
    ),
    m(
        "bnpo as grpo",
        "core.py",
        "loss = total / mask.sum().clamp(min=1)",
        "loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()",
        GROUP,
    ),
    m(
        "dr_grpo length ignored",
        "core.py",
        "loss = total / (len(per_token) * max_completion_length)",
        "loss = total / len(per_token)",
        GROUP,
    ),
    m("dapo per minibatch", "core.py", "loss = total / max(step_tokens, 1.0)", "loss = total / mask.sum()", GROUP),
    m(
        "dapo averaged over the step's minibatches",
        "group.py",
        'return loss, stats, mask.sum(), 1.0 if s.loss_type == "dapo" else scale',
        "return loss, stats, mask.sum(), scale",
        GROUP,
    ),
    m(
        "dr_grpo length from the minibatch",
        "group.py",
        "self.max_completion_length = self.settings.max_completion_length or packed.r_len",
        "self.max_completion_length = self.settings.max_completion_length or 1",
        GROUP,
    ),
    m(
        "RLOO ratio per token",
        "core.py",
        "log_ratio = ((logprobs - old_logprobs) * mask).sum(1)",
        "log_ratio = ((logprobs - old_logprobs) * mask).sum(1) / mask.sum(1)",
        GROUP,
    ),
    # GRPO and RLOO: the trainers
    m(
        "num_iterations ignored",
        "group.py",
        "self._optimize(packed, targets, self.settings.num_iterations, group_by_length=False)",
        "self._optimize(packed, targets, 1, group_by_length=False)",
        GROUP,
    ),
    m("value head trained", "group.py", "model.v_head.requires_grad_(False)", "pass", GROUP),
    m("groups unchecked", "group.py", "        self._check_groups(queries)\n", "", GROUP),
    m(
        "reference pass without beta",
        "trainer.py",
        "                if not self.uses_reference:\n",
        "                if False:\n",
        GROUP,
    ),
    m(
        "reference made without beta",
        "trainer.py",
        "        if not self.uses_reference:\n            ref_model = None\n",
        "        if False:\n            ref_model = None\n",
        GROUP,
    ),
    # GRPO: only two processes show these
    m(
        "batch std per process",
        "core.py",
        "return masked_var(values, torch.ones_like(values), global_batch=True).sqrt()",
        "return masked_var(values, torch.ones_like(values)).sqrt()",
        DISTRIBUTED_GROUP,
    ),
    m(
        "dapo tokens per process",
        "trainer.py",
        "return (_all_reduce_sum(local) / self.accelerator.num_processes).item()",
        "return local.item()",
        DISTRIBUTED_GROUP,
    ),
]

EQUIVALENT: dict[str, str] = {
    "recorder values from the first position": "transformers' generate keeps only the last "
    "position's logits (logits_to_keep=1), so the LM head's input has one position, first and last",
}
"""Mutants that cannot change behaviour, with the reason."""


def run_one(mutant: Mutant, workdir: Path) -> tuple[Mutant, bool, float, str]:
    """Apply `mutant` to a copy of the package in `workdir`; True if the tests failed (killed)."""
    pkg = workdir / mutant.name.replace(" ", "_").replace(",", "")
    shutil.copytree(ROOT / "promptrl", pkg / "promptrl", ignore=shutil.ignore_patterns("__pycache__"))
    path = pkg / mutant.file
    source = path.read_text()
    if source.count(mutant.original) != 1:
        raise SystemExit(
            f"mutant {mutant.name!r}: its snippet occurs {source.count(mutant.original)} times in {mutant.file}"
        )
    path.write_text(source.replace(mutant.original, mutant.replacement))
    env = dict(os.environ, PYTHONPATH=str(pkg), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    # Run from the copy: `python -m` puts the working directory first on sys.path, so the
    # mutated package is the one imported.
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-c",
        str(ROOT / "pyproject.toml"),
        "--rootdir",
        str(ROOT),
        *(["-m", "not slow"] if not mutant.tests else []),
        *(str(ROOT / t) for t in mutant.tests or TESTS),
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=pkg, env=env, capture_output=True, text=True, timeout=600)
    failed = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if proc.returncode not in (0, 1):  # 1: tests failed; anything else: the run itself broke
        raise SystemExit(
            f"mutant {mutant.name!r}: pytest exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return mutant, proc.returncode == 1, time.perf_counter() - start, (failed[0] if failed else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="run only the mutants with these names")
    args = parser.parse_args()
    chosen = [mu for mu in MUTANTS if not args.only or mu.name in args.only]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="promptrl-mutants-") as tmp:
        baseline = Mutant("baseline", "promptrl/ppo/trainer.py", "class PPOTrainer:", "class PPOTrainer:")
        if run_one(baseline, Path(tmp))[1]:
            print("The PPO tests fail without any mutant: fix them first.")
            return 1
    survivors = []
    with (
        tempfile.TemporaryDirectory(prefix="promptrl-mutants-") as tmp,
        ThreadPoolExecutor(args.jobs) as pool,
    ):
        for i, (mutant, killed, seconds, first_failure) in enumerate(
            pool.map(lambda mu: run_one(mu, Path(tmp)), chosen), 1
        ):
            verdict = "killed" if killed else ("equivalent" if mutant.name in EQUIVALENT else "SURVIVED")
            print(
                f"[{i:2d}/{len(chosen)}] {verdict:10s} {seconds:5.1f}s  {mutant.name}  {first_failure[:90]}",
                flush=True,
            )
            if not killed and mutant.name not in EQUIVALENT:
                survivors.append(mutant.name)
    killed = len(chosen) - len(survivors) - sum(mu.name in EQUIVALENT for mu in chosen)
    print(
        f"\n{killed} of {len(chosen)} mutants killed in {time.perf_counter() - start:.0f} s; "
        f"{len(survivors)} survived" + (": " + "; ".join(survivors) if survivors else "")
    )
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
