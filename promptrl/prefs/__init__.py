"""A person's taste as a reward: the rating store (`store`), and a Bradley-Terry fit of their
choices on frozen CLIP embeddings (`fit`) that `{type: preference, path: DIR}` then uses."""
