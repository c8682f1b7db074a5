"""Tabular benchmarks: build (sharded, resumable), the tabular estimator, and the comparison harness with
Optuna's samplers as peers. A 16-architecture table trained for real keeps it fast."""

import json
import re

import pyarrow.parquet as pq
import pytest

from kubenas.bench import compare, table
from kubenas.cli import main
from kubenas.core import Fidelity
from kubenas.estimators.tabular import TabularEstimator
from kubenas.spaces import make_space

# one worker builds the module's table once (under xdist each worker would build its own); the fixture is
# session-scoped because a module-scoped one is built again whenever that worker runs another module's test in
# between (it was: twice, 12 s each)
pytestmark = pytest.mark.xdist_group("bench-table")

PROTOCOL = table.Protocol(
    space="nb201",
    space_options={"ops": ["skip_connect", "nor_conv_1x1", "avg_pool_3x3"], "width": 4},
    epochs=2,
    sample=16,
    seed=3,
)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("table") / "t.parquet"
    first = table.build_shard(PROTOCOL, out, 0, 2, progress=False)
    lines = first.read_text().splitlines()
    assert len(lines) == 8
    # an interrupted shard resumes: a cut-off last line is trained again, finished lines are not
    first.write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])
    table.build_shard(PROTOCOL, out, 0, 2, progress=False)
    assert [json.loads(x)["arch_id"] for x in first.read_text().splitlines()[:5]] == [
        json.loads(x)["arch_id"] for x in lines[:5]
    ]
    with pytest.raises(ValueError, match="missing shard file"):
        table.merge(PROTOCOL, out, 2)
    table.build_shard(PROTOCOL, out, 1, 2, progress=False)
    return table.merge(PROTOCOL, out)


def test_table_holds_every_architecture_once_with_its_protocol(built):
    data, meta = table.read_table(built)
    assert data.num_rows == 16 and len(set(data.column("arch_id").to_pylist())) == 16
    assert meta["protocol"] == json.loads(json.dumps(PROTOCOL.to_dict())) and meta["splits"]["test"] == 1000
    row = data.to_pylist()[0]
    assert row["status"] == "ok" and len(row["val_acc_curve"]) == 2 and row["val_acc"] == row["val_acc_curve"][-1]
    assert 0 < row["test_acc"] <= 1 and row["params"] > 0 and row["macs"] > 0 and row["train_seconds"] > 0
    assert row["genotype"].startswith("|") and json.loads(row["arch"])
    assert pq.read_schema(built).metadata[table.METADATA_KEY]


def test_tabular_estimator_answers_from_the_table(built):
    est = TabularEstimator(built)
    space = make_space(PROTOCOL.space, **PROTOCOL.space_options)
    data, _ = table.read_table(built)
    row = data.to_pylist()[4]
    arch = json.loads(row["arch"])
    full = est.evaluate(arch, space, candidate_id="c")
    assert full.ok and full.metrics["val_acc"] == row["val_acc"] and full.cost == row["train_seconds"]
    assert "test_acc" not in full.metrics  # a search never sees the test split
    low = est.evaluate(arch, space, fidelity=Fidelity(epochs=1))
    assert low.metrics["val_acc"] == row["val_acc_curve"][0] and low.cost == pytest.approx(row["train_seconds"] / 2)
    assert est.test_acc(arch) == row["test_acc"]
    missing = {k: "nor_conv_1x1" for k in arch}
    if missing not in [json.loads(a) for a in data.column("arch").to_pylist()]:
        assert est.evaluate(missing, space).status == "failed"
    with pytest.raises(ValueError, match="holds the space"):
        est.evaluate(arch, make_space("nb201", width=4))


def test_compare_reports_regret_for_kubenas_and_optuna(built, tmp_path):
    traces = compare.compare(
        built, ("random", "regularized_evolution", "optuna_tpe"), seeds=3, budget=16, progress=False
    )
    assert len(traces) == 9
    est = TabularEstimator(built)
    for t in traces:
        assert len(t.regret) == 16 and all(a >= b for a, b in zip(t.regret, t.regret[1:]))  # never gets worse
        assert all(0 <= r <= est.best_test_acc for r in t.regret)
        assert t.seconds == sorted(t.seconds) and t.ask_ms >= 0
    # the sampled table holds 16 of the space's 729 cells: queries outside it fail and still count
    assert any(r > 0 for t in traces for r in t.regret)
    summary = compare.summarise(traces, (5, 16))
    paths = compare.write_outputs(traces, summary, tmp_path, {"table": "t", "seeds": 3, "budget": 16})
    assert paths["plot"].stat().st_size > 10_000
    assert "| optuna_tpe |" in paths["markdown"].read_text()
    assert paths["csv"].read_text().count("\n") == 1 + 9 * 16


def test_compare_runs_evolution_behind_early_termination_and_reports_the_epochs_saved(tmp_path):
    table = "nb201-4op-mnist1d"  # full curves of 3 epochs for every cell a search can reach
    variants = ("regularized_evolution", "regularized_evolution+lc")
    traces = compare.compare(table, variants, seeds=2, budget=120, progress=False)
    plain, lc = ([t for t in traces if t.strategy == name] for name in variants)
    assert all(t.epochs == [3 * (q + 1) for q in range(120)] and t.saved(120) == 0 for t in plain)
    for t in lc:
        assert all(b - a in (1, 2, 3) for a, b in zip([0] + t.epochs, t.epochs))  # 1 to 3 epochs a query
        assert t.saved(120) == 1 - t.epochs[-1] / 360 and t.seconds[-1] <= max(p.seconds[-1] for p in plain) * 1.5
    assert any(t.saved(120) > 0 for t in lc)
    summary = compare.summarise(traces, (50, 120))
    text = compare.write_outputs(traces, summary, tmp_path, {"table": table, "seeds": 2, "budget": 120})["markdown"]
    assert "Share of training epochs saved" in text.read_text() and "| regularized_evolution+lc |" in text.read_text()


def test_compare_reports_validation_regret_and_every_query_and_credits_rejected_proposals_no_savings(tmp_path):
    table = "nb201-4op-mnist1d"
    traces = compare.compare(table, ("optuna_random", "random"), seeds=2, budget=60, progress=False)
    est = TabularEstimator(table)
    for t in traces:
        assert len(t.val_regret) == len(t.queries) == 60 and all(a >= b for a, b in zip(t.val_regret, t.val_regret[1:]))
        answered = [q for q in t.queries if q[1] is not None]
        # the validation regret is the table's best validation accuracy minus the best one answered so far
        assert t.val_regret[-1] == pytest.approx(est.best_val_acc - max(q[1] for q in answered))
        assert t.regret[-1] == pytest.approx(est.best_test_acc - max(answered, key=lambda q: q[1])[2])
        assert t.answered[-1] == len(answered) and t.saved(60) == 0  # every answered query was trained fully
        assert all(q[4] == 3 and q[3] > 0 for q in answered)
    # a proposal that is never trained (the space rejects it, as Optuna's can be on spaces with "none", or the table
    # has no answer) is recorded without values, and is not credited as epochs saved
    from types import SimpleNamespace

    good = json.loads(next(iter(est.rows.values()))["arch"])
    asks = iter(
        [SimpleNamespace(arch=good, id="a"), SimpleNamespace(arch=dict.fromkeys(good, "no_such_op"), id="b")] * 3
    )
    mixed = compare._loop("mixed", 0, 6, est, est.space, lambda: next(asks), lambda cand, res: None)
    assert [q[1] is None for q in mixed.queries] == [False, True] * 3 and mixed.queries[1][1:] == [None, None, 0.0, 0]
    assert mixed.answered == [1, 1, 2, 2, 3, 3] and mixed.saved(6) == 0
    summary = compare.summarise(traces, (10, 60))
    paths = compare.write_outputs(traces, summary, tmp_path, {"table": table, "seeds": 2, "budget": 60})
    text = paths["markdown"].read_text()
    assert text.index("Validation regret") < text.index("Test regret") and "Share of training epochs" not in text
    rows = paths["queries"].read_text().splitlines()
    assert rows[0] == "strategy,seed,query,arch_id,val_acc,test_acc,cost_seconds,epochs" and len(rows) == 1 + 4 * 60
    assert paths["csv"].read_text().splitlines()[0].endswith("regret,val_regret,simulated_seconds")


def test_compare_names_the_best_strategy_against_optuna_tpe_at_each_checkpoint():
    def row(**medians):
        return {f"val{q}": {"median": m, "q1": m, "q3": m} for q, m in ((int(k[1:]), v) for k, v in medians.items())}

    summary = {
        "random": row(q25=0.04, q100=0.02),
        "bayes_quadratic": row(q25=0.03, q100=0.005),
        "optuna_tpe": row(q25=0.03, q100=0.01),
        "optuna_random": row(q25=0.001, q100=0.0),
    }
    (line,) = compare._against("optuna_tpe", summary, [25, 100])
    # Optuna's samplers are peers, not candidates for the best kubenas strategy
    assert line.endswith("25: bayes_quadratic 3.00 (1.00x); 100: bayes_quadratic 0.50 (0.50x).")
    assert compare._against("optuna_tpe", {"random": summary["random"]}, [25]) == []


def test_compare_spreads_seeds_over_processes_with_the_same_results(capsys):
    kwargs = dict(table="nb201-4op-mnist1d", strategies=("bananas", "optuna_tpe"), seeds=2, budget=15)
    alone = compare.compare(**kwargs, progress=False)
    spread = compare.compare(**kwargs, jobs=2)
    assert [(t.strategy, t.seed, t.regret, t.val_regret) for t in spread] == [
        (t.strategy, t.seed, t.regret, t.val_regret) for t in alone
    ]
    out = capsys.readouterr().out
    assert (
        re.search(
            r"bananas seed [01] \([12]/2\): test regret [\d.]+, validation regret [\d.]+ points after 15 "
            r"queries",
            out,
        )
        and "optuna_tpe: 2 seeds x 15 queries in" in out
    )
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        compare.compare(**kwargs, jobs=0)


def test_an_early_termination_variant_takes_its_threshold_after_an_at_sign():
    assert compare.variant("regularized_evolution+lc@0.5").early_stop == {"threshold": 0.5}
    assert compare.variant("regularized_evolution+lc").early_stop == {}
    assert compare.variant("bananas") == compare.Variant("bananas", {})
    for bad, says in (
        ("regularized_evolution+lc@1.5", "in (0, 1)"),
        ("regularized_evolution+lc@x", "in (0, 1)"),
        ("regularized_evolution@0.5", "@<threshold>"),
        ("evolution", "unknown strategy 'evolution'"),
    ):
        with pytest.raises(ValueError, match=re.escape(says)):
            compare.variant(bad)
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        compare.compare("nb201-4op-mnist1d", ("random", "nope"), seeds=1, budget=1, progress=False)


def test_compare_runs_multi_fidelity_variants_and_reports_by_simulated_time(built, tmp_path):
    traces = compare.compare(built, ("random", "bohb", "hyperband"), seeds=2, budget=16, progress=False)
    by = {name: [t for t in traces if t.strategy == name] for name in ("random", "bohb", "hyperband")}
    for t in traces:
        assert len(t.regret) == 16 and all(a >= b for a, b in zip(t.regret, t.regret[1:]))
    # rung-0 queries train for 1 of the table's 2 epochs, so the schedulers spend less than random (hyperband's
    # second bracket starts at full fidelity, and this sampled table answers few queries, so only "no more")
    spent = {name: sum(t.seconds[-1] for t in ts) for name, ts in by.items()}
    assert spent["bohb"] < spent["random"] and spent["hyperband"] <= spent["random"]
    unit = compare.unit_seconds(TabularEstimator(built))
    summary = compare.summarise(traces, (5, 16), unit, time_checkpoints=(2, 8))
    assert set(summary["bohb"]) >= {5, 16, "t2", "t8"}
    for row in summary.values():  # more time never means more regret
        assert row["t8"]["median"] <= row["t2"]["median"]
    paths = compare.write_outputs(
        traces, summary, tmp_path, {"table": "t", "seeds": 2, "budget": 16, "unit_seconds": unit}
    )
    text = paths["markdown"].read_text()
    assert "Regret at simulated training time" in text and "| bohb |" in text and "| 8 units |" in text


def test_compare_runs_a_strategy_behind_a_zero_cost_prefilter(built):
    with pytest.raises(ValueError, match="unknown strategy 'regularized_evolution\\+params'"):
        compare.compare(built, ("regularized_evolution+params",), seeds=1, budget=8, progress=False)
    (trace,) = compare.compare(built, ("regularized_evolution+synflow",), seeds=1, budget=8, progress=False)
    assert len(trace.regret) == 8 and trace.strategy == "regularized_evolution+synflow"


def test_cli(built, tmp_path, capsys):
    assert (
        main(
            [
                "bench",
                "compare",
                "--table",
                str(built),
                "--strategies",
                "local_search,optuna_random",
                "--seeds",
                "2",
                "--budget",
                "10",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert "| local_search |" in capsys.readouterr().out
    assert (
        main(
            [
                "bench",
                "compare",
                "--table",
                str(built),
                "--multi-objective",
                "--seeds",
                "2",
                "--budget",
                "10",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert "| optuna_nsga2 |" in capsys.readouterr().out
    assert main(["bench", "compare", "--table", str(built), "--strategies", "nope"]) == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().err
    assert main(["bench", "build", "--preset", "nope"]) == 2


def test_estimators_measures_rank_correlation_and_cost_against_full_training(built, tmp_path, capsys):
    from kubenas.bench import estimators

    results = {
        r["estimator"]: r
        for r in estimators.measure(built, n=8, proxies=("params", "nwot"), progress=False, oneshot_epochs=1)
    }
    full = results["full training"]
    assert full["kendall"] == pytest.approx(1.0) and full["spearman"] == pytest.approx(1.0)  # itself
    low = results["training, 1 of 2 epochs"]
    assert -1 <= low["kendall"] <= 1 and low["seconds_per_arch"] == pytest.approx(full["seconds_per_arch"] / 2)
    for name in (
        "zero-cost: params",
        "zero-cost: nwot",
        "one-shot: random sampling, 1 epochs",
        "one-shot: fair sampling, 1 epochs",
        "one-shot: ENAS, 1 epochs",
        "weight inheritance: 1 epoch from a trained parent",
    ):
        assert -1 <= results[name]["kendall"] <= 1 and 0 < results[name]["seconds_per_arch"]
    assert results["one-shot: ENAS, 1 epochs"]["total_seconds"] > 0
    with pytest.raises(ValueError, match="unknown estimator kind"):
        estimators.measure(built, n=12, kinds=("magic",))
    with pytest.raises(ValueError, match="sample of 99 asked, but the table has 16"):
        estimators.sample_rows(TabularEstimator(built), 99)
    assert estimators.sample_rows(TabularEstimator(built), 5, seed=1) == estimators.sample_rows(
        TabularEstimator(built), 5, seed=1
    )
    assert (
        main(
            [
                "bench",
                "estimators",
                "--table",
                str(built),
                "--sample",
                "8",
                "--out",
                str(tmp_path),
                "--estimators",
                "training,zero_cost",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "| zero-cost: synflow |" in text and "| full training | 1.000 | 1.000 |" in text
    assert (tmp_path / "estimators.md").exists()


def test_budget_runs_real_searches_and_looks_their_picks_up_in_the_table(tmp_path):
    from kubenas.bench import budget

    built = "nb201-4op-mnist1d"  # the committed table holds every architecture a search can pick
    methods = ("evolution: full training", "zero-cost search (synflow)")
    results = budget.run(built, methods, seeds=1, seconds=2, out=tmp_path, progress=False)
    assert [r["method"] for r in results] == list(methods)
    table = TabularEstimator(built)
    for r in results:
        row = table.rows[r["arch_id"]]
        assert r["test_acc"] == row["test_acc"] and r["regret"] == pytest.approx(table.best_test_acc - row["test_acc"])
        assert r["evaluations"] >= 1 and r["cpu_seconds"] > 0
    assert results[0]["epochs"] == 3 * results[0]["evaluations"]  # full training: the table's 3 epochs each
    again = budget.run(built, methods, seeds=1, seconds=2, out=tmp_path, progress=False)
    assert again == results  # resumed from budget.jsonl, nothing run twice
    text = budget.markdown(results, built, 2)
    assert "| evolution: full training | 1 |" in text and "evolution needs" in text
    # regularized evolution on the table is 100 points from the best after its first training, and never below 0
    first, never = budget.evolution_seconds_to(built, [1.0, -0.01], seeds=2, queries=20)
    assert 0 < first < 5 and never == float("inf")
    with pytest.raises(ValueError, match="unknown method"):
        budget.run(built, ("magic",), out=tmp_path)


def test_the_pipeline_benchmark_splits_a_run_by_what_its_tasks_recorded():
    from types import SimpleNamespace

    from kubenas.bench.pipeline import render, summarise

    cfg = SimpleNamespace(name="s", budget=SimpleNamespace(parallelism=2), fidelity=SimpleNamespace(epochs=2))
    task = {
        "task": "train_candidates",
        "started": 0.0,
        "step_start": 0.5,
        "ended": 10.5,
        "startup_cpu": 0.4,
        "cpu": 9.0,
        "train_cpu": 7.5,
        "train_wall": 8.0,
        "candidates": 3,
        "s3_requests": 5,
        "s3_seconds": 0.5,
        "mlflow_requests": 13,
        "mlflow_seconds": 0.5,
    }
    tasks = [
        task,
        {**task, "cpu": 8.0, "train_cpu": 7.0},
        {**task, "task": "sample_architectures", "candidates": 0, "cpu": 0.6, "train_cpu": 0.0, "train_wall": 0.0},
    ]
    rows = [{"train_seconds": 2.0}] * 6
    result = summarise(cfg, wall=20.0, stack_seconds=6.0, rows=rows, export={"retrain_seconds": 4.0}, tasks=tasks)
    assert result["training_s"] == 12 / 2 + 4.0 and result["outside_training_share"] == 1 - 10.0 / 20.0
    workers = result["tasks"]["train_candidates"]
    assert workers["fixed_cpu_per_candidate_s"] == ((9.0 - 7.5) + (8.0 - 7.0)) / 6
    assert (
        workers["startup_wall_s"] == 0.5
        and result["tasks"]["sample_architectures"]["fixed_cpu_per_candidate_s"] is None
    )
    assert result["split_s"]["step work (summed)"] == 2 * (10.0 - 8.0 - 0.5 - 0.5) + (10.0 - 0.5 - 0.5)
    assert "share outside training: 50 %" in render(result)


def test_the_pipeline_benchmark_times_a_containers_start_when_tasks_ran_in_containers():
    from types import SimpleNamespace

    from kubenas.bench.pipeline import render, summarise

    cfg = SimpleNamespace(name="s", budget=SimpleNamespace(parallelism=1), fidelity=SimpleNamespace(epochs=1))
    task = {
        "task": "update_strategy",
        "requested": 100.0,
        "started": 100.25,
        "step_start": 101.0,
        "ended": 102.0,
        "startup_cpu": 0.6,
        "cpu": 1.0,
        "train_cpu": 0.0,
        "train_wall": 0.0,
    }
    result = summarise(cfg, wall=5.0, stack_seconds=1.0, rows=[], export={}, tasks=[task, {**task, "started": 100.75}])
    assert result["tasks"]["update_strategy"]["container_start_s"] == 0.5
    assert result["split_s"]["container start (summed over tasks)"] == 1.0
    assert "| update_strategy | 2 | 0.50 | " in render(result)
    plain = summarise(
        cfg,
        wall=5.0,
        stack_seconds=1.0,
        rows=[],
        export={},
        tasks=[{k: v for k, v in task.items() if k != "requested"}],
    )
    assert plain["tasks"]["update_strategy"]["container_start_s"] is None


def test_import_maps_a_foreign_table_onto_a_space_and_reports_what_it_left_out(tmp_path, capsys):
    """An NB-201-style CSV of someone else's: other operation names, percentages, learning curves; with a row the
    space rejects, a repeat, and one without accuracies. The table it makes works in bench compare."""
    import itertools

    space = make_space("nb201", ops=["skip_connect", "nor_conv_1x1", "avg_pool_3x3"], width=4)
    theirs = {"skip_connect": "skip", "nor_conv_1x1": "conv1x1", "avg_pool_3x3": "pool"}
    lines = ["arch_str,valid_acc,test_acc,curve,time,n_params"]
    cells = list(itertools.islice(itertools.product(theirs, repeat=6), 40))
    for k, ops in enumerate(cells):
        arch = dict(zip(sorted(space.sample(0).keys()), ops))
        genotype = space.genotype(arch)
        for ours, other in theirs.items():
            genotype = genotype.replace(f"|{ours}~", f"|{other}~")
        val = 50 + k  # percent
        lines.append(f'"{genotype}",{val},{val - 1},"[{val / 2}, {val}]",{10 + k},{1000 + k}')
    lines.append('"|conv5x5~0|+|skip~0|skip~1|+|skip~0|skip~1|skip~2|",90,90,"[1, 90]",1,1')  # not an operation
    lines.append(lines[1])  # a repeat
    lines.append('"|skip~0|+|pool~0|pool~1|+|pool~0|pool~1|pool~2|",,,"[]",1,1')  # no accuracies
    source = tmp_path / "theirs.csv"
    source.write_text("\n".join(lines) + "\n")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        yaml_text := """
space: nb201
space_options: {ops: [skip_connect, nor_conv_1x1, avg_pool_3x3], width: 4}
arch: {column: arch_str, format: genotype, ops: {skip: skip_connect, conv1x1: nor_conv_1x1, pool: avg_pool_3x3}}
metrics: {val_acc: valid_acc, test_acc: test_acc, val_acc_curve: curve, train_seconds: time, params: n_params}
scale: 0.01
protocol: {dataset: cifar10, epochs: 200, optimizer: sgd, schedule: cosine, lr: 0.1}
"""
    )
    out = tmp_path / "t.parquet"
    assert main(["bench", "import", str(source), "--mapping", str(mapping), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{len(cells)} of {len(cells) + 3} rows" in printed
    assert "left out 1 row(s): not an architecture of the space (e.g. row 41:" in printed and "conv5x5" in printed
    assert "left out 1 row(s): a repeat of an architecture" in printed
    assert "left out 1 row(s): no validation or test accuracy" in printed
    est = TabularEstimator(out)
    assert len(est.rows) == len(cells) and est.protocol["optimizer"] == "sgd" and est.protocol["trained_epochs"] == 200
    assert est.protocol["epochs"] == 2 and est.best_val_acc == pytest.approx((50 + len(cells) - 1) / 100)
    first = dict(zip(sorted(space.sample(0).keys()), cells[0]))
    assert est.test_acc(first) == pytest.approx(0.49) and est.row(first)["val_acc_curve"] == pytest.approx([0.25, 0.5])
    traces = compare.compare(out, ("random",), seeds=1, budget=len(cells), progress=False)
    assert traces[0].val_regret[-1] == 0  # the whole table searched: its best found
    # a mapping with a mistake is named before anything is read
    mapping.write_text(yaml_text.replace("val_acc: valid_acc", "val_accuracy: valid_acc"))
    assert main(["bench", "import", str(source), "--mapping", str(mapping), "--out", str(out)]) == 2
    assert "metrics.val_acc: Field required" in capsys.readouterr().err


def test_mean_averages_tables_built_with_different_seeds_and_keeps_each_seed(built, tmp_path, capsys):
    import pyarrow as pa

    data, meta = table.read_table(built)

    def reseeded(seed, shift, fail=None):
        rows = data.to_pylist()
        for r in rows:
            if r["status"] == "ok":
                r.update(
                    val_acc=r["val_acc"] + shift,
                    test_acc=r["test_acc"] - shift,
                    seed=seed,
                    val_acc_curve=[x + shift for x in r["val_acc_curve"]],
                )
        if fail is not None:
            rows[fail].update(status="failed", error="CUDA out of memory")
        path = tmp_path / f"seed{seed}.parquet"
        m = {**meta, "protocol": {**meta["protocol"], "seed": seed}}
        pq.write_table(
            pa.Table.from_pylist(rows, schema=table.SCHEMA).replace_schema_metadata(
                {table.METADATA_KEY: json.dumps(m).encode()}
            ),
            path,
        )
        return path

    a, b = reseeded(10, 0.0), reseeded(11, 0.02, fail=3)
    out = tmp_path / "mean.parquet"
    assert main(["bench", "mean", str(a), str(b), "--out", str(out)]) == 0
    assert "the mean of 2 seeds" in capsys.readouterr().out
    est = TabularEstimator(out)
    assert est.meta["seeds"] == [10, 11] and est.protocol["seed"] is None
    assert est.training_seed == 10 and TabularEstimator(a).training_seed == 10  # what bench budget retrains with
    rows = {r["arch_id"]: r for r in data.to_pylist()}
    failed_id = data.to_pylist()[3]["arch_id"]
    assert est.rows[failed_id]["status"] == "failed" and "seed 11: CUDA out of memory" in est.rows[failed_id]["error"]
    for key, r in est.rows.items():
        if key == failed_id or rows[key]["status"] != "ok":
            continue
        assert r["val_acc"] == pytest.approx(rows[key]["val_acc"] + 0.01)
        assert r["val_acc_by_seed"] == pytest.approx([rows[key]["val_acc"], rows[key]["val_acc"] + 0.02])
        assert r["test_acc"] == pytest.approx(rows[key]["test_acc"] - 0.01)
        assert r["val_acc_curve"] == pytest.approx([x + 0.01 for x in rows[key]["val_acc_curve"]])
    # seeds of other protocols, or the same seed twice, are refused
    other = reseeded(12, 0.0)
    m = {**meta, "protocol": {**meta["protocol"], "seed": 12, "lr": 0.5}}
    pq.write_table(pq.read_table(other).replace_schema_metadata({table.METADATA_KEY: json.dumps(m).encode()}), other)
    assert main(["bench", "mean", str(a), str(other), "--out", str(out)]) == 2
    assert "protocols differ beyond the seed" in capsys.readouterr().err
    with pytest.raises(ValueError, match="repeat a seed"):
        table.mean([a, a], out)


def test_a_table_on_images_is_built_and_measured_with_its_recipe(tmp_path, capsys):
    """`bench build` trains on image data with the recipe it is given (the table's metadata holds every field of
    it), and `bench estimators` trains with the table's recipe; a table built before recipes keeps its lr."""
    out = tmp_path / "shapes.parquet"
    recipe = {"preset": "nb201", "batch_size": 32, "augment": {"crop_padding": 1, "flip": True}}
    common = ["--space", "nb201", "--space-options", json.dumps({"width": 4, "ops": ["skip_connect", "avg_pool_3x3"]})]
    common += ["--dataset", "shapes", "--dataset-options", json.dumps({"train": 120, "test": 40, "resize": 8})]
    common += ["--epochs", "1", "--sample", "3", "--out", str(out)]
    assert main(["bench", "build", *common, "--recipe", json.dumps(recipe), "--lr", "0.05"]) == 0
    assert main(["bench", "build", *common, "--recipe", json.dumps(recipe), "--lr", "0.05", "--merge"]) == 0
    est = TabularEstimator(out)
    trained = est.protocol["recipe"]
    assert (trained["preset"], trained["optimizer"], trained["nesterov"], trained["lr"]) == ("nb201", "sgd", True, 0.05)
    assert trained["batch_size"] == 32 and trained["augment"] == {"crop_padding": 1, "flip": True, "cutout": 0}
    assert len(est.rows) == 3 and all(0 <= r["val_acc"] <= 1 for r in est.rows.values())
    from kubenas.bench.budget import protocol_estimator

    assert protocol_estimator(est).recipe == table.protocol_recipe(est.protocol)
    capsys.readouterr()
    assert main(["bench", "estimators", "--table", str(out), "--sample", "3", "--estimators", "training"]) == 0
    assert "| full training | 1.000 | 1.000 |" in capsys.readouterr().out
    old = table.protocol_recipe({"lr": 0.02, "batch_size": 64, "weight_decay": 0.0})
    assert (old.preset, old.lr, old.batch_size, old.weight_decay) == ("default", 0.02, 64, 0.0)
    assert main(["bench", "build", *common, "--recipe", '{"preset": "nope"}']) == 2
    assert "recipe.preset: unknown preset 'nope'" in capsys.readouterr().err
