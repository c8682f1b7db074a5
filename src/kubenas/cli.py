"""The ``kubenas`` command line.

``kubenas search`` runs a search in this process (no services) and writes its history and strategy state as
JSON. ``kubenas spaces`` and ``kubenas strategies`` list what is registered.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import signal
import sys
import textwrap
from pathlib import Path

from kubenas import __version__
from kubenas.core import Fidelity, UserError
from kubenas.data import DATASETS, load_dataset
from kubenas.search import search
from kubenas.spaces import SPACES, make_space
from kubenas.strategies import STRATEGIES

_CLUSTER_AUTH = (
    "Authentication follows kfp: a bearer token in $KF_PIPELINES_TOKEN, else the pod's service-account "
    "token (KF_PIPELINES_SA_TOKEN_PATH). Images: $KUBENAS_IMAGE_REPO:<version>"
)


def _json_arg(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"width\": 8}'")
    return value


def _json_or_name(text: str) -> str | dict:
    """A name, or a JSON object (text that starts with ``{``)."""
    return _json_arg(text) if text.lstrip().startswith("{") else text


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_search(sub) -> None:
    """`kubenas search`: a search in this process."""
    s = sub.add_parser("search", help="run a search in this process and write its results")
    s.add_argument(
        "--space", default="nb201", choices=sorted(SPACES), help="search space (default nb201; see `kubenas spaces`)"
    )
    s.add_argument(
        "--space-options", type=_json_arg, default={}, metavar="JSON", help="the space's options, e.g. '{\"width\": 8}'"
    )
    s.add_argument(
        "--strategy",
        default="regularized_evolution",
        choices=sorted(STRATEGIES),
        help="search strategy (default regularized_evolution; see `kubenas strategies`)",
    )
    s.add_argument(
        "--strategy-options",
        type=_json_arg,
        default={},
        metavar="JSON",
        help="the strategy's options, e.g. '{\"population_size\": 20}'",
    )
    s.add_argument("--dataset", default="mnist1d", choices=sorted(DATASETS), help="dataset (default mnist1d)")
    s.add_argument(
        "--dataset-options",
        type=_json_arg,
        default={},
        metavar="JSON",
        help='the dataset\'s options, e.g. \'{"path": "data.parquet", "shape": [1, 40]}\'',
    )
    s.add_argument("--max-evals", type=int, default=20, help="candidates to evaluate (default 20)")
    s.add_argument("--max-seconds", type=float, default=None, help="stop asking for candidates after this long")
    s.add_argument("--batch-size", type=int, default=1, help="candidates asked at a time")
    s.add_argument("--epochs", type=int, default=3, help="training epochs per candidate (default 3)")
    s.add_argument(
        "--data-fraction",
        type=float,
        default=1.0,
        help="fraction of the training split a candidate sees (a lower-fidelity proxy; default 1)",
    )
    s.add_argument("--width-mult", type=float, default=1.0, help="multiplies every layer width (default 1)")
    s.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="input length or side to resize to (signals and images; default: the data's own)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the strategy and of training (default 0)")
    s.add_argument("--out", type=Path, default=Path("runs/search"), help="directory for history.json and state.json")
    s.add_argument("--quiet", action="store_true", help="print only the result")


def _add_run(sub) -> None:
    """`kubenas run`: a config's pipeline on this machine."""
    r = sub.add_parser("run", help="run a search config's pipeline locally (kfp.local) on the embedded stack")
    r.add_argument("config", type=Path, help="the search config (YAML), e.g. pipelines/configs/mnist1d-nb201.yaml")
    r.add_argument("--home", type=Path, default=None, help="work directory of the stack (default ~/.kubenas)")
    r.add_argument("--rounds", type=_positive_int, default=None, help="run fewer rounds than the config")
    r.add_argument("--verbose", action="store_true", help="show every line kfp.local prints")
    r.add_argument(
        "--runner",
        default="subprocess",
        choices=("subprocess", "container"),
        help="subprocess (default): each task is a process of this Python; container: each task runs in "
        "the component image, as on a cluster (needs podman or docker and the built image)",
    )
    r.add_argument(
        "--image",
        default=None,
        help="with --runner container: the image, e.g. localhost/kubenas:"
        f"{__version__} (default: the config's resources.image, else "
        f"ghcr.io/kubenas/kubenas:{__version__})",
    )


def _add_compile(sub) -> None:
    """`kubenas compile`: a config's pipeline package."""
    c = sub.add_parser("compile", help="compile a search config into a pipeline package for the Kubeflow UI")
    c.add_argument("config", type=Path, help="the search config (YAML)")
    c.add_argument("-o", "--output", type=Path, default=None, help="default: <search name>.yaml")


def _add_cluster(sub) -> None:
    """`kubenas submit`, `schedule` and `upload`: a config on a Kubeflow cluster."""
    kfp_help = "Kubeflow Pipelines API URL (default: $KF_PIPELINES_ENDPOINT); token: $KF_PIPELINES_TOKEN"
    for name, text in (
        ("submit", "compile a search config and start a run of it on a Kubeflow cluster"),
        ("schedule", "create a recurring run of a search config on a Kubeflow cluster"),
        ("upload", "upload a search config's pipeline (or a new version) to the Kubeflow UI"),
    ):
        k = sub.add_parser(name, help=text, description=text + ". " + _CLUSTER_AUTH)
        k.add_argument("config", type=Path, help="the search config (YAML)")
        k.add_argument("--host", default=None, help=kfp_help)
        k.add_argument(
            "--namespace",
            default=None,
            help="Kubeflow profile namespace (multi-user clusters); default: the config's cluster.namespace",
        )
        if name == "upload":
            k.add_argument("--version", default=None, help="version name (default: <kubenas version>-<timestamp>)")
            continue
        k.add_argument("--experiment", default="kubenas", help="KFP experiment, created if missing (default kubenas)")
        k.add_argument(
            "--service-account",
            default=None,
            help="service account of the run's pods (default: the config's cluster.service_account, else "
            "kubenas-runner, from manifests/); '' for the namespace default",
        )
        if name == "submit":
            k.add_argument("--run-name", default=None, help="default: <search name>-<timestamp>")
        else:
            k.add_argument(
                "--cron", required=True, help="6-field cron, seconds first: '0 0 2 * * *' is 02:00 every day"
            )
            k.add_argument("--name", default=None, help="recurring run name (default kubenas-<search name>)")
            k.add_argument("--catchup", action="store_true", help="run the schedules missed while paused")


def _add_pull(sub) -> None:
    """`kubenas pull`: a registered model, exported."""
    pl = sub.add_parser("pull", help="fetch a registered model from MLflow: state_dict, arch JSON, ONNX, model card")
    pl.add_argument("model", metavar="NAME[@ALIAS]", help="registered model, alias default champion")
    pl.add_argument("-o", "--output", type=Path, required=True, help="directory to write into")
    pl.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow server (default: $MLFLOW_TRACKING_URI, else the local stack of `kubenas up`)",
    )
    pl.add_argument("--home", type=Path, default=None, help="work directory of the local stack (default ~/.kubenas)")
    pl.add_argument(
        "--evaluate",
        action="store_true",
        help="also run model.onnx over the dataset's test split and compare with the logged accuracy",
    )


def _add_bench(sub) -> None:
    """`kubenas bench ...`: tabular benchmarks."""
    b = sub.add_parser("bench", help="tabular benchmarks: build a table, compare strategies on it")
    bsub = b.add_subparsers(dest="bench_command", required=True)
    bb = bsub.add_parser(
        "build",
        help="train every architecture of a finite space (or a sample) into a Parquet table",
        description="Train every architecture of a finite space, or a random sample of it, with one "
        "fixed protocol, into a Parquet table. Resumable; --shard I/N splits the work "
        "between processes or machines, --merge joins the shards.",
    )
    bb.add_argument("--preset", default=None, help="a named protocol: " + ", ".join(_bench_presets()))
    bb.add_argument("--space", default=None, help="a finite registered space, without --preset")
    bb.add_argument("--space-options", type=_json_arg, default=None, metavar="JSON", help="the space's options")
    bb.add_argument("--dataset", default=None, help="the dataset to train on, without --preset")
    bb.add_argument("--dataset-options", type=_json_arg, default=None, metavar="JSON", help="the dataset's options")
    bb.add_argument("--epochs", type=int, default=None, help="training epochs per architecture (the protocol's)")
    bb.add_argument(
        "--recipe",
        type=_json_or_name,
        default=None,
        metavar="NAME|JSON",
        help="the training recipe: a preset (default, nb201, darts) or JSON such as "
        '\'{"preset": "nb201", "lr": 0.05}\' (kubenas.recipes); default: the default preset at lr 0.01',
    )
    bb.add_argument("--lr", type=float, default=None, help="learning rate of the protocol's recipe")
    bb.add_argument("--seed", type=int, default=None, help="training seed of the protocol")
    bb.add_argument("--sample", type=int, default=None, help="train this many random architectures, not all")
    bb.add_argument("--out", type=Path, default=None, help="default: benchmarks/<preset or space>.parquet")
    bb.add_argument("--shard", default="0/1", metavar="I/N", help="train every N-th architecture from the I-th")
    bb.add_argument("--merge", action="store_true", help="join the N shards' files into the table")

    bm = bsub.add_parser(
        "mean",
        help="average tables of one protocol built with different training seeds",
        description="Average two or more tables that differ only in the training seed (bench build "
        "--seed): accuracies, curves and times become means, and each seed's values are "
        "kept beside them.",
    )
    bm.add_argument("tables", nargs="+", type=Path, help="the per-seed tables")
    bm.add_argument("--out", type=Path, required=True, help="the mean table to write (.parquet)")

    bi = bsub.add_parser(
        "import",
        help="someone else's results (CSV or Parquet) as a kubenas benchmark table",
        description="Map a CSV or Parquet file of architectures and their accuracies onto a "
        "registered space (the mapping names the columns, renames operations and "
        "decisions, and states the training protocol) and write a kubenas table. Rows "
        "the space rejects are reported and left out.",
    )
    bi.add_argument("source", type=Path, help="a .csv or .parquet file")
    bi.add_argument(
        "--mapping",
        type=Path,
        required=True,
        help="YAML: space, arch, metrics, scale, protocol (see kubenas.bench.importer)",
    )
    bi.add_argument("--out", type=Path, required=True, help="the table to write (.parquet)")

    bc = bsub.add_parser(
        "compare",
        help="strategies and Optuna's samplers on a table: regret over seeds",
        description="Run strategies (and Optuna's samplers, through Optuna's ask/tell) against a "
        "tabular benchmark for many seeds; write a CSV, a Markdown table and a plot.",
    )
    bc.add_argument("--table", default="nb201-4op-mnist1d", help="a shipped table name or a .parquet path")
    bc.add_argument(
        "--strategies",
        default=None,
        help="comma-separated strategies or variants (default: random, regularized_evolution, "
        "local_search, bananas, reinforce, bohb, hyperband, optuna_tpe, optuna_random); variants: "
        "bohb, hyperband, regularized_evolution+synflow, regularized_evolution+nwot, "
        "regularized_evolution+lc (early termination; +lc@0.5 sets its threshold)",
    )
    bc.add_argument("--seeds", type=int, default=30, help="runs per strategy, one seed each (default 30)")
    bc.add_argument("--budget", type=int, default=400, help="queries per run")
    bc.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="processes running seeds at a time, one BLAS thread each (default 1: in this process)",
    )
    bc.add_argument(
        "--out",
        type=Path,
        default=Path("runs/bench-compare"),
        help="directory for the CSVs (regret per query; queries.csv: each query's architecture, "
        "validation and test accuracy, cost), the Markdown table and the plot",
    )
    bc.add_argument(
        "--multi-objective",
        action="store_true",
        help="hypervolume of accuracy against parameters: nsga2, pareto_evolution, optuna_nsga2, random",
    )

    be = bsub.add_parser(
        "estimators",
        help="rank correlation and cost of each cheap estimator against full training",
        description="Score a fixed sample of a table's architectures with every zero-cost proxy "
        "and with fewer training epochs; report Kendall tau and Spearman rho with the "
        "table's validation accuracy, and the cost per architecture.",
    )
    be.add_argument("--table", default="nb201-4op-mnist1d", help="a shipped table name or a .parquet path")
    be.add_argument("--sample", type=int, default=200, help="architectures in the fixed sample")
    be.add_argument("--seed", type=int, default=0, help="seed of the sample and of the estimators")
    be.add_argument(
        "--estimators",
        default=None,
        help="comma-separated estimator kinds (default: all of them; a wrong one is named with the list)",
    )
    be.add_argument("--out", type=Path, default=Path("runs/bench-estimators"), help="directory for the results")

    bu = bsub.add_parser(
        "budget",
        help="every estimator in a real search under a budget of CPU seconds",
        description="Search a table's space with real training under the table's protocol, one "
        "CPU thread per search, for each estimator (full training, learning-curve "
        "stop, inheritance, pre-filter, zero-cost, one-shot); look each pick up in the "
        "table and report its regret and the compute used. Resumable.",
    )
    bu.add_argument("--table", default="nb201-4op-mnist1d", help="a shipped table name or a .parquet path")
    bu.add_argument("--methods", default=None, help="comma-separated (default: all; see --list)")
    bu.add_argument("--list", action="store_true", help="list the methods and exit")
    bu.add_argument("--seeds", type=int, default=3, help="searches per method, one seed each (default 3)")
    bu.add_argument("--seconds", type=float, default=300.0, help="CPU seconds per search")
    bu.add_argument("--jobs", type=int, default=1, help="searches at a time (one CPU thread each)")
    bu.add_argument("--out", type=Path, default=Path("runs/bench-budget"), help="directory for the results")


def _add_stack(sub) -> None:
    """`kubenas up` and `down`: the local stack."""
    for name, text in (
        ("up", "start the local stack (SeaweedFS + MLflow) and leave it running"),
        ("down", "stop the local stack started by `kubenas up`"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--home", type=Path, default=None, help="work directory of the stack (default ~/.kubenas)")


def _add_env(sub) -> None:
    """`kubenas env`: a shell pointed at the local stack."""
    e = sub.add_parser(
        "env",
        help="print `export` lines that point a shell at the running local stack",
        description="Print `export` lines for MLflow, boto3 and pyarrow to use the local stack of "
        '`kubenas up`: eval "$(kubenas env)". The keys are read from the stack\'s '
        "credentials file when the lines run, so they are never printed.",
    )
    e.add_argument("--home", type=Path, default=None, help="work directory of the stack (default ~/.kubenas)")


def _add_status(sub) -> None:
    """`kubenas status`: where a search stands."""
    st = sub.add_parser(
        "status",
        help="where a search stands, from its store: rounds, best, in flight, errors",
        description="Read a search's state from its store (S3): rounds committed, best so far, the "
        "open round's candidates in flight, the run holding it, the last error and the "
        "last export. Works for a search on a cluster given its S3 endpoint (and the AWS_* "
        "keys in the environment); without one, reads the local stack, starting it for "
        "the moment when it is stopped.",
    )
    st.add_argument("name", help="the search's name")
    st.add_argument(
        "--endpoint", default=None, help="S3 endpoint of the store (default: AWS_ENDPOINT_URL_S3, else the local stack)"
    )
    st.add_argument("--bucket", default="kubenas", help="the store's bucket (storage.bucket; default kubenas)")
    st.add_argument("--prefix", default="searches", help="the searches' prefix in it (storage.prefix)")
    st.add_argument("--home", type=Path, default=None, help="work directory of the local stack (default ~/.kubenas)")
    st.add_argument("--json", action="store_true", help="print the status as JSON")


def _add_listings(sub) -> None:
    """`kubenas spaces` and `strategies`: what is registered."""
    for name, what in (("spaces", "search spaces"), ("strategies", "strategies and one-shot methods")):
        p = sub.add_parser(name, help=f"list the registered {what}, with their options")
        p.add_argument("name", nargs="?", default=None, help="one of them: its whole description and options")


def _add_import(sub) -> None:
    """`kubenas import katib`: a Katib NAS Experiment or result as a kubenas search config."""
    im = sub.add_parser("import", help="translate another tool's NAS experiment into a kubenas search config")
    isub = im.add_subparsers(dest="import_command", required=True)
    k = isub.add_parser(
        "katib",
        help="a Katib NAS Experiment (enas, darts), or a finished Katib result, as a kubenas search config",
        description="Write a kubenas search config for each Katib kubeflow.org/v1beta1 NAS Experiment in a YAML "
        "file, with a report (printed, and as comments atop each config) of what mapped, what kubenas replaces by "
        "design and what could not be mapped. With --result, the config's search is the one architecture a "
        "finished experiment returned (an ENAS list per layer, or a DARTS Genotype(...)): `kubenas run` retrains "
        "it and registers it in MLflow.",
    )
    k.add_argument("experiment", type=Path, nargs="?", default=None, help="the Experiment YAML (one or more documents)")
    k.add_argument("-o", "--out", type=Path, default=None, help="a .yaml file, or a directory: a config per Experiment")
    k.add_argument("--result", default=None, help="a finished experiment's result, or a file holding it")
    k.add_argument(
        "--experiment", dest="result_experiment", type=Path, default=None, help="with --result: its Experiment"
    )
    k.add_argument("--strict", action="store_true", help="fail on anything not mapped (replaced by design is allowed)")
    k.add_argument("--force", action="store_true", help="overwrite existing config files")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubenas", description="Neural Architecture Search on Kubeflow Pipelines")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_search,
        _add_run,
        _add_compile,
        _add_cluster,
        _add_pull,
        _add_bench,
        _add_stack,
        _add_env,
        _add_status,
        _add_listings,
        _add_import,
    ):
        add(sub)
    return parser


def summary(target) -> str:
    """One sentence on a registered class: its own docstring's first sentence (where two names share a module), else
    its module's, joined across lines, without reST markup."""
    text = (target.__doc__ or "").strip() or (sys.modules[target.__module__].__doc__ or "").strip()
    paragraph = " ".join(text.split("\n\n")[0].split())
    sentence = re.split(r"(?<=[.!?])(?<! al\.)(?<!e\.g\.)(?<!i\.e\.)\s+(?=[A-Z])", paragraph, maxsplit=1)[0]
    sentence = re.sub(r"^``\w+``:\s*", "", sentence).replace("``", "")
    return sentence[:1].upper() + sentence[1:]


# Set by the config's own fields (seed, objective, resources), not by a strategy's or a method's options.
_SET_ELSEWHERE = {"self", "space", "seed", "metric", "mode", "device", "amp"}


def options_text(target) -> str:
    """A registered class's options and their defaults, as a config's ``options`` section takes them."""
    shown = []
    for cls in [c for c in target.__mro__ if c is not object] if inspect.isclass(target) else [target]:
        fn = cls.__init__ if inspect.isclass(cls) else cls
        params = inspect.signature(fn).parameters.values()
        for p in params:
            if (
                p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and p.name not in _SET_ELSEWHERE
                and p.name not in {n for n, _ in shown}
            ):
                shown.append((p.name, "required" if p.default is p.empty else repr(p.default)))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return ", ".join(f"{n}={d}" if d != "required" else f"{n} (required)" for n, d in shown) or "none"


def _list(registry) -> None:
    for name, cls in registry.items():
        print(f"{name:22s} {summary(cls)}")
        print(
            textwrap.fill(
                options_text(cls), width=118, initial_indent=" " * 23 + "options: ", subsequent_indent=" " * 32
            )
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":  # a SIGTERM (kill, a CI timeout, a closed session) cleans up as Ctrl-C does
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return COMMANDS[args.command](args)
    except (UserError, ValueError, ImportError) as exc:  # bad input, or a service that cannot be used: one line
        print(f"kubenas: error: {exc}", file=sys.stderr)
        return 2


def _list_command(args: argparse.Namespace) -> int:
    from kubenas.rounds import methods

    registries = {"search spaces": SPACES} if args.command == "spaces" else methods()
    if args.name is not None:
        found = next((r[args.name] for r in registries.values() if args.name in r), None)
        if found is None:
            known = ", ".join(n for r in registries.values() for n in r)
            raise ValueError(
                f"no {args.command[:-1].replace('strategie', 'strategy')} {args.name!r}; registered: {known}"
            )
        docs = [inspect.getdoc(found) if found.__doc__ else "", inspect.getdoc(sys.modules[found.__module__]) or ""]
        print("\n\n".join([args.name, *[d for d in docs if d], f"options: {options_text(found)}"]))
        return 0
    for i, (heading, registry) in enumerate(registries.items()):
        if i:
            print(f"\n{heading}:")
        _list(registry)
    return 0


def _search_command(args: argparse.Namespace) -> int:
    # every input is checked before any training starts
    space = make_space(args.space, **args.space_options)
    fidelity = Fidelity(
        epochs=args.epochs, data_fraction=args.data_fraction, width_mult=args.width_mult, resolution=args.resolution
    )
    dataset = load_dataset(args.dataset, **args.dataset_options)
    if not args.quiet:
        print(
            f"{dataset.describe()}\nspace {args.space} ({space.size():,} architectures), strategy {args.strategy}, "
            f"fidelity {fidelity.to_dict()}"
        )
    result = search(
        space,
        args.strategy,
        dataset=dataset,
        fidelity=fidelity,
        max_evals=args.max_evals,
        max_seconds=args.max_seconds,
        batch_size=args.batch_size,
        seed=args.seed,
        strategy_options=args.strategy_options,
        progress=not args.quiet,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "history.json").write_text(json.dumps(result.history, indent=1))
    (args.out / "state.json").write_text(json.dumps(result.state))
    ok = sum(r["status"] == "ok" for r in result.history)
    print(f"{len(result.history)} evaluated ({ok} ok, {len(result.history) - ok} failed), stopped by {result.stopped}")
    if result.best:
        m = result.best["metrics"]
        print(
            f"best {result.best['id']}: val_acc={m['val_acc']:.4f} params={m['params']:,} macs={m['macs']:,}\n"
            f"  {result.best['genotype']}"
        )
    print(f"wrote {args.out / 'history.json'} and {args.out / 'state.json'}")
    return 0


def _pipeline_command(args: argparse.Namespace) -> int:
    from kubenas import stack
    from kubenas.config import ConfigError, load_config
    from kubenas.tracking import ui_url

    try:
        if args.command == "up":
            s = stack.start(args.home)
            print(
                f"MLflow UI: {ui_url(s.mlflow_uri)}\n"
                f"S3 endpoint: {s.s3_endpoint} (credentials in {s.home / 'credentials.json'})\n"
                f"`kubenas run` uses this stack until `kubenas down`."
            )
            return 0
        if args.command == "down":
            s = stack.load(args.home)
            running = s.running() if s is not None else []
            if s is not None:
                s.stop()  # also what is left of a half-down stack, and its record
            print(f"local stack stopped ({', '.join(running)})" if running else "no local stack is running")
            return 0
        config = load_config(args.config)
        if args.command == "compile":
            from kubenas.pipelines import compile_pipeline

            out = compile_pipeline(config, args.output or Path(f"{config.name}.yaml"))
            print(
                f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB, {config.budget.rounds} rounds, parallelism "
                f"{config.budget.parallelism}); upload it in the Kubeflow UI under Pipelines > Upload pipeline"
            )
            return 0
        from kubenas import local_run

        if args.image and args.runner != "container":
            raise ConfigError("--image applies to --runner container only")
        report = local_run.run(
            config, args.home, verbose=args.verbose, rounds=args.rounds, runner=args.runner, image=args.image
        )
    except UserError:  # bad input, or S3, MLflow, the stack or the engine unusable: main() says it in one line
        raise
    except KeyboardInterrupt:
        print("kubenas: interrupted; the local stack was stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:  # a task failed inside kfp.local
        print(
            f"kubenas: the pipeline failed: {exc}\nfull log: see the latest run-*.log under the work directory",
            file=sys.stderr,
        )
        return 1
    s = report.summary
    retrain = (report.summary or {}).get("retrain_seconds", 0.0)
    print(
        f"\nsearch {config.name!r} finished in {report.seconds:.0f} s: {report.work}, "
        f"winner retrained in {retrain:.0f} s, "
        f"stack start {report.stack_seconds:.0f} s\nfull log: {report.log}"
    )
    if s:
        metric = s.get("retrained_metric", config.objective.metric)
        print(
            f"winner {s['candidate_id']}: {metric}={s[metric]:.4f} test_acc={s['test_acc']:.4f} "
            f"params={s['params']:,} macs={s['macs']:,}\n  {s['genotype']}\n"
            f"registered {s['model_name']} version {s['version']} as {s['alias']}"
        )
        if report.stopped_stack is not None:  # the run's own stack is stopped: its address would lead nowhere
            home = "" if report.stopped_stack == stack.DEFAULT_HOME else f" --home {report.stopped_stack}"
            print(f"the local stack is stopped (its data is kept); `kubenas up{home}` serves the MLflow UI again")
        else:
            print(f"MLflow UI: {ui_url(s['mlflow_uri'])}")
        print(f'load it with: mlflow.pyfunc.load_model("{s["model_uri"]}").predict(...) (class names)')
    _print_top(config, report.top)
    for kind, path in report.reports.items():
        print(f"{'report of the search' if kind == 'search' else 'report of the winner'}: {path}")
    return 0


def _print_top(config, top: list[dict]) -> None:
    """The search's best candidates, best first (all its runs, not only this one)."""
    if not top:
        return
    from rich.console import Console
    from rich.table import Table

    metric = config.objective.metric
    table = Table(
        title=f"top {len(top)} by {metric} ({config.objective.mode}; most epochs first)",
        title_justify="left",
        box=None,
        pad_edge=False,
    )
    for column in ("#", "candidate", "round", "epochs", metric, "params", "genotype"):
        table.add_column(
            column, justify="right" if column in ("#", "round", "epochs", metric, "params") else "left", overflow="fold"
        )
    for i, r in enumerate(top, start=1):
        params = r["metrics"].get("params")
        table.add_row(
            str(i),
            r["id"],
            str(r["round"]),
            "-" if r.get("epochs") is None else str(r["epochs"]),
            f"{r['metrics'][metric]:.4f}",
            f"{params:,}" if isinstance(params, int) else "-",
            r["genotype"],
        )
    Console(width=None if sys.stdout.isatty() else 250).print(table)  # a log or a pipe: no folded genotypes


def _cluster_command(args: argparse.Namespace) -> int:
    from kubenas import cluster
    from kubenas.config import load_config

    config = load_config(args.config)
    if args.namespace is None:
        args.namespace = config.cluster.namespace
    if getattr(args, "service_account", "") is None:
        args.service_account = config.cluster.service_account or "kubenas-runner"
    if args.command == "submit":
        done = cluster.submit(
            config,
            host=args.host,
            namespace=args.namespace,
            experiment=args.experiment,
            service_account=args.service_account,
            run_name=args.run_name,
        )
    elif args.command == "schedule":
        done = cluster.schedule(
            config,
            cron=args.cron,
            host=args.host,
            namespace=args.namespace,
            experiment=args.experiment,
            service_account=args.service_account,
            name=args.name,
            catchup=args.catchup,
        )
    else:
        done = cluster.upload(config, host=args.host, namespace=args.namespace, version=args.version)
    print(f"created {done.kind} {done.name!r} ({done.id})\n{done.url}")
    if args.command == "schedule":
        print(
            f"runs on '{args.cron}', one at a time; each run resumes search {config.name!r} and moves the "
            f"'champion' alias of {config.model_name!r} only on improvement"
        )
    return 0


def _bench_presets() -> list[str]:
    from kubenas.bench.table import PRESETS

    return sorted(PRESETS)


def _bench_command(args: argparse.Namespace) -> int:
    import dataclasses

    from kubenas.bench import table

    if args.bench_command == "compare":
        return _bench_compare(args)
    if args.bench_command == "import":
        return _bench_import(args)
    if args.bench_command == "mean":
        out = table.mean(args.tables, args.out)
        print(f"wrote {out}: the mean of {len(args.tables)} seeds")
        return 0
    if args.bench_command == "estimators":
        return _bench_estimators(args)
    if args.bench_command == "budget":
        return _bench_budget(args)
    if args.preset is not None and args.preset not in table.PRESETS:
        raise ValueError(f"--preset {args.preset!r}: expected one of {', '.join(sorted(table.PRESETS))}")
    if args.preset is None and args.space is None:
        raise ValueError("give --preset NAME or --space NAME (with --space-options) for a protocol")
    base = table.PRESETS[args.preset] if args.preset else table.Protocol(space=args.space, space_options={})
    overrides = {
        k: v
        for k, v in {
            "space": args.space,
            "space_options": args.space_options,
            "dataset": args.dataset,
            "dataset_options": args.dataset_options,
            "epochs": args.epochs,
            "recipe": args.recipe,
            "seed": args.seed,
            "sample": args.sample,
        }.items()
        if v is not None
    }
    protocol = dataclasses.replace(base, **overrides)
    if args.lr is not None:
        spec = protocol.recipe
        spec = {"preset": spec} if isinstance(spec, str) else dict(spec)
        protocol = dataclasses.replace(protocol, recipe={**spec, "lr": args.lr})
    protocol.to_dict()  # resolves the recipe: a bad one is named before any training
    out = args.out or Path("benchmarks") / f"{args.preset or protocol.space}.parquet"
    try:
        shard, shards = (int(x) for x in args.shard.split("/"))
    except ValueError:
        raise ValueError(f"--shard {args.shard!r}: expected I/N, e.g. 0/2") from None
    if args.merge:
        path = table.merge(protocol, out)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    else:
        path = table.build_shard(protocol, out, shard, shards)
        print(f"shard {shard}/{shards} complete: {path}")
    return 0


def _bench_estimators(args: argparse.Namespace) -> int:
    from kubenas.bench import estimators

    if args.sample < 3:
        raise ValueError("--sample must be at least 3 for a rank correlation")
    kinds = tuple(k.strip() for k in args.estimators.split(",")) if args.estimators else estimators.KINDS
    results = estimators.measure(args.table, args.sample, args.seed, kinds=kinds)
    text = estimators.markdown(results, str(args.table), args.sample)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "estimators.md").write_text(text)
    print(text + f"wrote {args.out / 'estimators.md'}")
    return 0


def _bench_budget(args: argparse.Namespace) -> int:
    from kubenas.bench import budget

    if args.list:
        print("\n".join(budget.METHODS))
        return 0
    methods = tuple(m.strip() for m in args.methods.split(",")) if args.methods else tuple(budget.METHODS)
    if args.seeds < 1 or args.seconds <= 0 or args.jobs < 1:
        raise ValueError("--seeds, --seconds and --jobs must be positive")
    results = budget.run(args.table, methods, args.seeds, args.seconds, args.out, args.jobs)
    text = budget.markdown([r for r in results if r["method"] in methods], str(args.table), args.seconds)
    (args.out / "budget.md").write_text(text)
    print(text + f"wrote {args.out / 'budget.md'}")
    return 0


def _bench_import(args: argparse.Namespace) -> int:
    from kubenas.bench import importer

    report = importer.import_table(args.source, importer.load_mapping(args.mapping), args.out)
    print(f"wrote {report['out']}: {report['kept']} of {report['read']} rows")
    for reason, count in report["left_out"].items():
        print(f"left out {count} row(s): {reason} (e.g. {report['examples'][reason]})")
    return 0


def _bench_compare(args: argparse.Namespace) -> int:
    from kubenas.bench import compare

    chosen = tuple(s.strip() for s in args.strategies.split(",")) if args.strategies else None
    if args.seeds < 1 or args.budget < 1 or args.jobs < 1:
        raise ValueError("--seeds, --budget and --jobs must be positive")
    try:
        import matplotlib  # noqa: F401
        import optuna  # noqa: F401
        import threadpoolctl  # noqa: F401
    except ImportError as exc:
        raise ValueError(
            f"bench compare needs the bench extra ({exc.name} is missing): pip install 'kubenas[bench]'"
        ) from None
    if args.multi_objective:
        hv = compare.compare_multiobjective(
            args.table, chosen or compare.MO_STRATEGIES, seeds=args.seeds, budget=args.budget
        )
        lines = [
            f"Hypervolume of (validation accuracy, parameters) after {args.budget} queries, normalised to "
            f"the table's range; median [IQR] over {args.seeds} seeds; higher is better.",
            "",
            "| strategy | hypervolume |",
            "| --- | --- |",
        ]
        lines += [f"| {k} | {v['median']:.4f} [{v['q1']:.4f}, {v['q3']:.4f}] |" for k, v in hv.items()]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "compare-multiobjective.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return 0
    traces = compare.compare(
        args.table, chosen or compare.DEFAULT_STRATEGIES, seeds=args.seeds, budget=args.budget, jobs=args.jobs
    )
    checkpoints = tuple(q for q in compare.CHECKPOINTS if q <= args.budget) or (args.budget,)
    from kubenas.estimators.tabular import TabularEstimator

    unit = compare.unit_seconds(TabularEstimator(args.table))
    summary = compare.summarise(traces, checkpoints, unit)
    paths = compare.write_outputs(
        traces,
        summary,
        args.out,
        {"table": str(args.table), "seeds": args.seeds, "budget": args.budget, "unit_seconds": unit},
    )
    print(paths["markdown"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _pull_command(args: argparse.Namespace) -> int:
    import os

    from kubenas import stack
    from kubenas.pull import pull

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:  # no server named: the local stack of `kubenas up`, if it runs
        local = stack.load(args.home)
        if local is not None and local.alive():
            os.environ.update(local.env())
            uri = local.mlflow_uri
    done = pull(args.model, args.output, tracking_uri=uri, evaluate=args.evaluate)
    m = done.metrics
    print(f"pulled {done.name} v{done.version} (@{done.alias}) into {done.directory}: {', '.join(done.files)}")
    print(f"logged test_acc={m.get('test_acc', float('nan')):.4f} params={m.get('params', 0):,.0f}")
    if done.onnx_test_acc is not None:
        same = abs(done.onnx_test_acc - m.get("test_acc", -1)) < 1e-9
        print(
            f"model.onnx test_acc={done.onnx_test_acc:.4f} ({'matches' if same else 'DIFFERS FROM'} the logged value)"
        )
        return 0 if same else 1
    return 0


def _env_command(args: argparse.Namespace) -> int:
    import shlex

    from kubenas import stack

    home = Path(args.home or stack.DEFAULT_HOME).expanduser()
    local = stack.load(home)
    if local is None or not local.alive():
        print(
            f"kubenas: error: no local stack runs under {home}: start it with `kubenas up`"
            + ("" if args.home is None else f" --home {home}"),
            file=sys.stderr,
        )
        return 2
    read = (
        f"$({shlex.quote(sys.executable)} -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "
        f"{shlex.quote(str(local.home / 'credentials.json'))} {{}})"
    )
    print(
        f'# the local stack under {local.home}; use it from this shell with: eval "$(kubenas env'
        + ("" if args.home is None else f" --home {shlex.quote(str(home))}")
        + ')"'
    )
    for key, value in local.env().items():
        if key == "AWS_ACCESS_KEY_ID":
            value = read.format("access_key")
        elif key == "AWS_SECRET_ACCESS_KEY":
            value = read.format("secret_key")
        else:
            value = shlex.quote(value)
        print(f'export {key}="{value}"' if value.startswith("$(") else f"export {key}={value}")
    return 0


def _status_command(args: argparse.Namespace) -> int:
    import os

    from kubenas import stack
    from kubenas.data.s3 import endpoint_from_env
    from kubenas.status import render, search_status
    from kubenas.store import SearchStore

    endpoint, started = args.endpoint or endpoint_from_env(), None
    try:
        if endpoint is None:  # the local stack: running, or started for the moment
            local = stack.load(args.home)
            if local is not None and not local.alive():
                raise stack.StackError(
                    f"{local.describe()} is not answering; `kubenas down` then `kubenas up` "
                    "restarts it over the same data"
                )
            if local is None:  # stopped, as `kubenas run` leaves its own: started for this look, then stopped
                local = started = stack.start(args.home, quiet=True)
            os.environ.update(local.env())
            endpoint = local.s3_endpoint
        store = SearchStore(args.bucket, args.prefix, args.name, endpoint)
        state = search_status(store, args.prefix)
    finally:
        if started is not None:
            started.stop()
    print(json.dumps(state, indent=1) if args.json else render(state))
    return 0


def _import_command(args: argparse.Namespace) -> int:
    from kubenas import katib

    if args.result is not None:
        source = args.result_experiment or args.experiment
        if source is None:
            raise UserError("--result needs the experiment it came from: --experiment EXPERIMENT.yaml")
        exps, skipped = katib.read_experiments(source)
        if len(exps) != 1:
            raise UserError(f"{source} holds {len(exps)} Experiments; --result needs the one it came from")
        result = Path(args.result).read_text() if Path(args.result).is_file() else args.result
        imported = [katib.from_result(result, exps[0])]
    else:
        if args.experiment is None:
            raise UserError("give the Experiment YAML: kubenas import katib EXPERIMENT.yaml -o OUT")
        exps, skipped = katib.read_experiments(args.experiment)
        imported = [katib.translate(exp) for exp in exps]  # every document checked before anything is written
    if args.strict:
        unmapped = [f"{i.name}: {k} ({why})" for i in imported for k, why in i.report.unmapped]
        if unmapped:
            raise UserError("--strict: not mapped: " + "; ".join(unmapped))
    targets = _import_targets(args.out, imported)
    for path in targets:
        if path.exists() and not args.force:
            raise UserError(f"{path} exists: give another -o, or --force to overwrite it")
    for note in skipped:
        print(note)
    for item, path in zip(imported, targets):
        print("\n".join(item.report.lines()))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(item.text())
        print(f"wrote {path}: set dataset.options.path, then `kubenas compile {path}` or `kubenas run {path}`\n")
    return 0


def _import_targets(out: Path | None, imported) -> list[Path]:
    """Where each imported config goes: one file, or a directory of ``<name>.yaml``."""
    if out is not None and out.suffix in (".yaml", ".yml") and not out.is_dir():
        if len(imported) > 1:
            raise UserError(f"{len(imported)} Experiments: give -o a directory, one config per Experiment")
        return [out]
    folder = out if out is not None else Path(".")
    return [folder / f"{item.config['name']}.yaml" for item in imported]


# command -> its handler; each returns the exit status, and main() turns an expected error into one line
COMMANDS = {
    "search": _search_command,
    "run": _pipeline_command,
    "compile": _pipeline_command,
    "up": _pipeline_command,
    "down": _pipeline_command,
    "submit": _cluster_command,
    "schedule": _cluster_command,
    "upload": _cluster_command,
    "pull": _pull_command,
    "bench": _bench_command,
    "env": _env_command,
    "status": _status_command,
    "spaces": _list_command,
    "strategies": _list_command,
    "import": _import_command,
}


if __name__ == "__main__":
    sys.exit(main())
