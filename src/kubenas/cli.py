"""The ``kubenas`` command line.

``kubenas search`` runs a search in this process (no services) and writes its history and strategy state as
JSON. ``kubenas spaces`` and ``kubenas strategies`` list what is registered.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kubenas.data import DATASETS, load_dataset
from kubenas.estimators import Fidelity
from kubenas.search import search
from kubenas.spaces import SPACES, make_space
from kubenas.strategies import STRATEGIES


def _json_arg(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"width\": 8}'")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubenas", description="Neural Architecture Search on Kubeflow Pipelines")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="run a search in this process and write its results")
    s.add_argument("--space", default="nb201", choices=sorted(SPACES))
    s.add_argument("--space-options", type=_json_arg, default={}, metavar="JSON")
    s.add_argument("--strategy", default="regularized_evolution", choices=sorted(STRATEGIES))
    s.add_argument("--strategy-options", type=_json_arg, default={}, metavar="JSON")
    s.add_argument("--dataset", default="mnist1d", choices=sorted(DATASETS))
    s.add_argument("--dataset-options", type=_json_arg, default={}, metavar="JSON")
    s.add_argument("--max-evals", type=int, default=20)
    s.add_argument("--max-seconds", type=float, default=None)
    s.add_argument("--batch-size", type=int, default=1, help="candidates asked at a time")
    s.add_argument("--epochs", type=int, default=3)
    s.add_argument("--data-fraction", type=float, default=1.0)
    s.add_argument("--width-mult", type=float, default=1.0)
    s.add_argument("--resolution", type=int, default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, default=Path("runs/search"), help="directory for history.json and state.json")
    s.add_argument("--quiet", action="store_true")

    sub.add_parser("spaces", help="list the registered search spaces")
    sub.add_parser("strategies", help="list the registered strategies")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("spaces", "strategies"):
        registry = SPACES if args.command == "spaces" else STRATEGIES
        for name, cls in registry.items():
            summary = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines() or [""]
            print(f"{name:22s} {summary[0]}")
        return 0

    try:  # every input is checked before any training starts
        space = make_space(args.space, **args.space_options)
        fidelity = Fidelity(epochs=args.epochs, data_fraction=args.data_fraction, width_mult=args.width_mult,
                            resolution=args.resolution)
        dataset = load_dataset(args.dataset, **args.dataset_options)
    except (ValueError, ImportError) as exc:
        print(f"kubenas: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"{dataset.describe()}\nspace {args.space} ({space.size():,} architectures), strategy {args.strategy}, "
              f"fidelity {fidelity.to_dict()}")
    try:
        result = search(space, args.strategy, dataset=dataset, fidelity=fidelity, max_evals=args.max_evals,
                        max_seconds=args.max_seconds, batch_size=args.batch_size, seed=args.seed,
                        strategy_options=args.strategy_options, progress=not args.quiet)
    except ValueError as exc:
        print(f"kubenas: error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "history.json").write_text(json.dumps(result.history, indent=1))
    (args.out / "state.json").write_text(json.dumps(result.state))
    ok = sum(r["status"] == "ok" for r in result.history)
    print(f"{len(result.history)} evaluated ({ok} ok, {len(result.history) - ok} failed), stopped by {result.stopped}")
    if result.best:
        m = result.best["metrics"]
        print(f"best {result.best['id']}: val_acc={m['val_acc']:.4f} params={m['params']:,} macs={m['macs']:,}\n"
              f"  {result.best['genotype']}")
    print(f"wrote {args.out / 'history.json'} and {args.out / 'state.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
