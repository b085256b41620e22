"""Did tuning help? A paired comparison of two prompt generators on held-out ideas.

- `compare`: both generators sample, render and score the same ideas from the same seeds;
- `stats`: the bootstrap intervals, prompt statistics and `EvalResult` (eval.json/.md/.png);
- `evaluate`: `promptrl eval` — what to compare, found from a run's own records.
"""

from .compare import compare, heldout_split, judges_from_config, resolve_judges, sample_and_score
from .evaluate import evaluate_model
from .stats import EvalResult

__all__ = [
    "EvalResult",
    "compare",
    "evaluate_model",
    "heldout_split",
    "judges_from_config",
    "resolve_judges",
    "sample_and_score",
]
