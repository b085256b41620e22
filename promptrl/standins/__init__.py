"""Offline stand-ins for the hub's models: tiny, random-init, built locally and cached.

They load through the same `from_pretrained` / open_clip calls as the real weights, so tests,
the `tiny` preset and the benchmarks take the real code paths without a model hub.

- `tiny`: `tiny:<asset>` names in configs and their local paths (`resolve_tiny`);
- `builders`: one builder per tiny model (policy, pipeline, CLIP, PickScore, HPS);
- `hub`: a stand-in Hugging Face Hub holding the real presets' repositories;
- `families`: the image-model families (SDXL, SD3.5, FLUX.1, PixArt-Sigma, Sana, TAESD) it
  can add under their real repository ids, each written by `family_writers` from the tiny
  parts in `family_parts`; `hubcache`: where a repository lies in the cache;
- `lms`: its language models; `sentiment`: trl 0.1's example task's models.
"""

from .tiny import resolve_tiny, tiny_assets, unresolve_tiny

__all__ = ["resolve_tiny", "tiny_assets", "unresolve_tiny"]
