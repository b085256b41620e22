"""`promptrl prefs export|import|fit|show`: the rating store from the command line."""

from __future__ import annotations

import json

from ..rundir import preference_paths
from .store import PreferenceStore


def open_store(args) -> PreferenceStore:
    db, images = preference_paths(args.prefs_db, args.runs_dir)
    return PreferenceStore(db, images)


def cmd_show(args) -> None:
    store = open_store(args)
    raters: dict[str, dict[str, int]] = {}
    for c in store.choices(args.rater):
        counts = raters.setdefault(c.rater, {})
        counts[c.choice] = counts.get(c.choice, 0) + 1
    print(json.dumps({"db": str(store.db), "choices": store.count(args.rater), "raters": raters}, sort_keys=True))


def cmd_export(args) -> None:
    path = open_store(args).export_jsonl(args.out, args.rater)
    print(path)


def cmd_import(args) -> None:
    print(f"imported {open_store(args).import_jsonl(args.file)} choices")


def cmd_fit(args) -> None:
    from ..config import get_preset
    from ..standins.tiny import resolve_tiny
    from .fit import fit_preferences

    rewards = resolve_tiny(get_preset(args.preset).rewards)
    info = fit_preferences(
        open_store(args),
        args.out,
        args.clip_model or rewards.clip_model,
        args.clip_pretrained if args.clip_model else rewards.clip_pretrained,
        rater=args.rater,
        hidden=args.hidden,
        weight_decay=args.weight_decay,
        k=args.folds,
    )
    low, high = info["accuracy_95"]
    print(
        f"{info['pairs']} pairs: held-out accuracy {info['accuracy']:.3f} (95% {low:.3f}-{high:.3f}), "
        f"log-loss {info['log_loss']:.3f}; reward in {args.out} (use {{type: preference, path: {args.out}}})"
    )


def add_prefs_parser(sub) -> None:
    """The `prefs` subcommand group."""
    parser = sub.add_parser("prefs", help="your ratings from the app: export, import, fit a personal reward")
    group = parser.add_subparsers(dest="prefs_command", required=True)

    def common(p):
        p.add_argument("--runs-dir", default="runs/app", help="the app's runs dir (the store is preferences.db in it)")
        p.add_argument("--prefs-db", default=None, help="the rating store's file, instead of the one in --runs-dir")
        p.add_argument("--rater", default=None, help="only this rater's choices (default: everyone's)")

    p = group.add_parser("show", help="how many choices the store holds, per rater")
    common(p)
    p.set_defaults(func=cmd_show)
    p = group.add_parser("export", help="write the choices as JSONL plus an images folder")
    common(p)
    p.add_argument("--out", required=True, help="folder to write choices.jsonl and images/ into")
    p.set_defaults(func=cmd_export)
    p = group.add_parser("import", help="add the choices of a JSONL file `prefs export` wrote")
    common(p)
    p.add_argument("file", help="choices.jsonl (its images/ folder beside it)")
    p.set_defaults(func=cmd_import)
    p = group.add_parser("fit", help="fit a Bradley-Terry reward to the choices; reports k-fold accuracy")
    common(p)
    p.add_argument("--out", required=True, help="folder for head.safetensors, head.json and fit.png")
    p.add_argument("--preset", default="tiny", help="preset whose CLIP model embeds the images (default: tiny)")
    p.add_argument("--clip-model", default=None, help="open_clip model instead of the preset's")
    p.add_argument("--clip-pretrained", default=None, help="its weights (with --clip-model)")
    p.add_argument("--hidden", type=int, default=0, help="hidden units of an MLP head (default 0: linear)")
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--folds", type=int, default=5, help="k of the k-fold held-out accuracy")
    p.set_defaults(func=cmd_fit)
