"""One rank of the two-process PPO test (launched by tests/test_distributed.py with torchrun).

usage: ddp_worker.py OUTDIR MODEL_DIR
Each rank takes two steps on its own random data, then writes `OUTDIR/rank{N}.pt`: its
parameters, its last scores and scalar statistics, its KL coefficient after the update and the
process count it saw. The KL target is tiny so that the ranks' own KLs would move a per-rank
controller in opposite directions.
"""

import sys

import numpy as np
import torch

from promptrl import PPOConfig, PPOTrainer, ValueHeadModel


def main(outdir: str, model_dir: str) -> None:
    config = PPOConfig(batch_size=4, mini_batch_size=2, forward_batch_size=2, ppo_epochs=2, lr=1e-3, target=0.01)
    trainer = PPOTrainer(ValueHeadModel.from_pretrained(model_dir), None, None, config=config)
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
        },
        f"{outdir}/rank{rank}.pt",
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
