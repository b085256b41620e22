"""One rank of the two-process PPO test (launched by tests/test_distributed.py with torchrun).

usage: ddp_worker.py OUTDIR MODEL_DIR [ppo|grpo]
PPO: each rank takes two steps on its own random data, then writes `OUTDIR/rank{N}.pt`: its
parameters, its last scores and scalar statistics, its KL coefficient after the update, the
process count it saw, and what its decisions were made on: the KL (and sample count) the KL
controller was given, the verdict of each minibatch's guards and the mean of its own samples'
advantages. `ratio_threshold=1.0` makes the ratio guard skip some minibatches, so a guard that
decided on a rank's own numbers would disagree between the ranks.
GRPO (`group_main`): each rank takes one step on two groups of its own, with the batch's std
(`scale_rewards="batch"`) and dapo's token normalisation, and writes its advantages, the token
count its loss was normalised by, its scores, response lengths, statistics and parameters.
"""

import sys

import numpy as np
import torch

from promptrl import PPOConfig, PPOTrainer, ValueHeadModel
from promptrl.ppo import GRPOConfig, GRPOTrainer


def main(outdir: str, model_dir: str) -> None:
    config = PPOConfig(
        batch_size=4, mini_batch_size=2, forward_batch_size=2, ppo_epochs=2, lr=1e-3, target=0.01, ratio_threshold=1.0
    )
    trainer = PPOTrainer(ValueHeadModel.from_pretrained(model_dir), None, None, config=config)
    seen = {"kl_updates": [], "verdicts": [], "advantage_means": []}
    update, train_minibatch, optimize = trainer.kl_ctl.update, trainer._train_minibatch, trainer._optimize

    def recorded_update(current_kl, n_steps):
        seen["kl_updates"].append((float(current_kl), int(n_steps)))
        return update(current_kl, n_steps)

    def recorded_train_minibatch(*args):
        stats, verdict = train_minibatch(*args)
        seen["verdicts"].append(verdict)
        return stats, verdict

    def recorded_optimize(packed, targets, *args):
        mask, advantages = packed.response_mask, targets["advantages"]
        seen["advantage_means"].append(((advantages * mask).sum() / mask.sum()).item())
        return optimize(packed, targets, *args)

    trainer.kl_ctl.update = recorded_update
    trainer._train_minibatch = recorded_train_minibatch
    trainer._optimize = recorded_optimize
    rank = trainer.accelerator.process_index
    vocab = trainer.vocab_size
    g = torch.Generator().manual_seed(1000 + rank)
    for _ in range(2):  # the second step has a non-zero KL, different on each rank
        queries = [torch.randint(0, vocab, (int(n),), generator=g) for n in torch.randint(2, 6, (4,), generator=g)]
        responses = [torch.randint(0, vocab, (int(n),), generator=g) for n in torch.randint(2, 8, (4,), generator=g)]
        scores = torch.randn(4, generator=g) + 10 * rank  # the ranks' scores differ a lot
        stats = trainer.step(queries, responses, scores)
    torch.save(
        {
            "params": {k: v.detach().cpu() for k, v in trainer.policy.state_dict().items()},
            "kl": stats["objective/kl"],
            "next_kl_coef": trainer.kl_ctl.value,
            "num_processes": trainer.accelerator.num_processes,
            "scores": scores,
            "stats": {k: float(v) for k, v in stats.items() if not k.startswith("time/") and np.ndim(v) == 0},
            "kl_dist": torch.as_tensor(stats["objective/kl_dist"]),
            **seen,
        },
        f"{outdir}/rank{rank}.pt",
    )


def group_main(outdir: str, model_dir: str) -> None:
    config = PPOConfig(batch_size=4, mini_batch_size=4, forward_batch_size=2, lr=1e-3, max_grad_norm=None)
    settings = GRPOConfig(scale_rewards="batch", loss_type="dapo")
    trainer = GRPOTrainer(ValueHeadModel.from_pretrained(model_dir), None, None, config, settings, group_size=2)
    seen = {}
    optimize, step_tokens = trainer._optimize, trainer._step_tokens

    def recorded_optimize(packed, targets, *args, **kwargs):
        seen["advantages"] = targets["advantages"].cpu()
        return optimize(packed, targets, *args, **kwargs)

    trainer._optimize = recorded_optimize
    trainer._step_tokens = lambda packed, group: seen.setdefault("step_tokens", step_tokens(packed, group))
    rank = trainer.accelerator.process_index
    g = torch.Generator().manual_seed(2000 + rank)
    queries = [q for q in (torch.randint(0, trainer.vocab_size, (3,), generator=g) for _ in range(2)) for _ in range(2)]
    lengths = [2 + 3 * rank, 3 + 3 * rank, 4, 2]  # rank 1's responses are longer: the ranks' token counts differ
    responses = [torch.randint(0, trainer.vocab_size, (n,), generator=g) for n in lengths]
    scores = torch.randn(4, generator=g) * (1 + 4 * rank) + 10 * rank
    stats = trainer.step(queries, responses, scores)
    torch.save(
        {
            "params": {k: v.detach().cpu() for k, v in trainer.policy.state_dict().items()},
            "scores": scores,
            "lengths": lengths,
            "stats": {k: float(v) for k, v in stats.items() if not k.startswith("time/") and np.ndim(v) == 0},
            **seen,
        },
        f"{outdir}/rank{rank}.pt",
    )


if __name__ == "__main__":
    (group_main if sys.argv[3:] == ["grpo"] else main)(sys.argv[1], sys.argv[2])
