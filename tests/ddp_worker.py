"""One rank of the two-process PPO test (launched by tests/test_distributed.py with torchrun).

usage: ddp_worker.py OUTDIR MODEL_DIR
Each rank takes two steps on its own random data, then writes `OUTDIR/rank{N}.pt`: its
parameters, its last scores and scalar statistics, its KL coefficient after the update, the
process count it saw, and what its decisions were made on: the KL (and sample count) the KL
controller was given, the verdict of each minibatch's guards and the mean of its own samples'
advantages. `ratio_threshold=1.0` makes the ratio guard skip some minibatches, so a guard that
decided on a rank's own numbers would disagree between the ranks.
"""

import sys

import numpy as np
import torch

from promptrl import PPOConfig, PPOTrainer, ValueHeadModel


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


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
