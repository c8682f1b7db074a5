"""`kubenas submit`, `schedule` and `upload` through the real kfp client library, against a local stand-in for
the Kubeflow Pipelines API server (tests/cluster/fake_kfp.py) that records what reaches it."""

import json

import pytest
import yaml

from kubenas import cluster
from kubenas.cli import main
from kubenas.config import load_config
from kubenas.pipelines import compile_pipeline
from tests.cluster.fake_kfp import FakeKfp

CONFIG = "pipelines/configs/mnist1d-nb201.yaml"
TOKEN = "kfp-token-0123456789abcdef"


@pytest.fixture
def kfp_server(monkeypatch):
    for var in (
        "KF_PIPELINES_ENDPOINT",
        "KF_PIPELINES_UI_ENDPOINT",
        "KF_PIPELINES_TOKEN",
        "KF_PIPELINES_SA_TOKEN_PATH",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KF_PIPELINES_TOKEN", TOKEN)
    with FakeKfp(token=TOKEN) as server:
        yield server


def compiled_docs(tmp_path, config_path=CONFIG):
    path = compile_pipeline(load_config(config_path), tmp_path / "expected.yaml")
    return list(yaml.safe_load_all(path.read_text()))


def assert_no_token_printed(capsys):
    captured = capsys.readouterr()
    assert TOKEN not in captured.out and TOKEN not in captured.err
    return captured


def test_submit_creates_a_run_with_the_compiled_spec_and_the_config(kfp_server, tmp_path, capsys):
    rc = main(["submit", CONFIG, "--host", kfp_server.url, "--namespace", "team-a", "--run-name", "nightly-1"])
    out = assert_no_token_printed(capsys).out
    assert rc == 0
    (run,) = kfp_server.runs.values()
    assert f"{kfp_server.url}/#/runs/details/{run['run_id']}" in out
    # the experiment, created in the profile namespace, holds the run
    (exp,) = kfp_server.experiments.values()
    assert exp["display_name"] == "kubenas" and exp["namespace"] == "team-a"
    assert run["experiment_id"] == exp["experiment_id"] and run["display_name"] == "nightly-1"
    assert run["service_account"] == "kubenas-runner"
    # the spec that reached the server is the compiled pipeline, platform settings included
    spec, platform = compiled_docs(tmp_path)
    assert run["pipeline_spec"]["pipeline_spec"] == spec
    assert run["pipeline_spec"]["platform_spec"] == platform
    params = run["runtime_config"]["parameters"]
    config = load_config(CONFIG)
    assert json.loads(params["config_json"]) == config.model_dump(mode="json")
    assert int(params["rounds"]) == config.budget.rounds
    assert int(params["candidates_per_round"]) == config.budget.candidates_per_round
    # the typed fields are sent too: they take precedence, so a pipeline compiled from an older config runs this one
    assert (params["name"], int(params["seed"]), params["strategy"], int(params["epochs"])) == (
        config.name,
        config.seed,
        config.strategy.name,
        config.fidelity.epochs,
    )
    # every request carried the token, as a bearer token
    assert kfp_server.requests and {r.headers["authorization"] for r in kfp_server.requests} == {f"Bearer {TOKEN}"}


def test_submit_reuses_an_existing_experiment(kfp_server, capsys):
    for _ in range(2):
        assert main(["submit", CONFIG, "--host", kfp_server.url, "--experiment", "nas"]) == 0
    assert len(kfp_server.experiments) == 1 and len(kfp_server.runs) == 2
    assert len(kfp_server.calls("POST", "/experiments")) == 1


def test_schedule_creates_a_nightly_recurring_run(kfp_server, tmp_path, capsys):
    rc = main(["schedule", CONFIG, "--host", kfp_server.url, "--cron", "0 0 2 * * *", "--service-account", ""])
    out = assert_no_token_printed(capsys).out
    assert rc == 0
    (job,) = kfp_server.recurring.values()
    assert job["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert int(job["max_concurrency"]) == 1 and job["no_catchup"] is True and job["mode"] == "ENABLE"
    assert job["display_name"] == "kubenas-mnist1d-nb201" and "service_account" not in job
    assert job["pipeline_spec"]["pipeline_spec"] == compiled_docs(tmp_path)[0]
    assert json.loads(job["runtime_config"]["parameters"]["config_json"])["name"] == "mnist1d-nb201"
    assert f"#/recurringrun/details/{job['recurring_run_id']}" in out and "'champion'" in out


def test_the_configs_cluster_section_names_the_namespace_and_service_account_and_the_flags_win(
    kfp_server, tmp_path, capsys
):
    config = yaml.safe_load(open(CONFIG))
    config["cluster"] = {"namespace": "team-b", "service_account": "katib-trials"}
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["submit", str(path), "--host", kfp_server.url]) == 0
    cron = ["--cron", "0 0 2 * * *"]
    assert main(["schedule", str(path), "--host", kfp_server.url, *cron, "--namespace", "team-c"]) == 0
    (run,) = kfp_server.runs.values()
    (job,) = kfp_server.recurring.values()
    namespaces = {e["experiment_id"]: e["namespace"] for e in kfp_server.experiments.values()}
    assert namespaces[run["experiment_id"]] == "team-b" and run["service_account"] == "katib-trials"
    assert namespaces[job["experiment_id"]] == "team-c" and job["service_account"] == "katib-trials"
    config["cluster"] = {"namespace": "Team B"}
    path.write_text(yaml.safe_dump(config))
    assert main(["submit", str(path), "--host", kfp_server.url]) == 2
    assert "cluster.namespace" in capsys.readouterr().err and len(kfp_server.runs) == 1


def test_schedule_with_catchup(kfp_server, capsys):
    assert main(["schedule", CONFIG, "--host", kfp_server.url, "--cron", "0 30 1 * * 1-5", "--catchup"]) == 0
    (job,) = kfp_server.recurring.values()
    assert job["no_catchup"] is False and job["trigger"]["cron_schedule"]["cron"] == "0 30 1 * * 1-5"


@pytest.mark.parametrize(
    "cron, message",
    [
        ("0 2 * * *", "expected 6 fields"),
        ("0 0 2 * * * *", "expected 6 fields"),
        ("0 0 2 * * ;rm", "day of week field"),
    ],
)
def test_a_bad_cron_is_refused_before_any_request(kfp_server, capsys, cron, message):
    assert main(["schedule", CONFIG, "--host", kfp_server.url, "--cron", cron]) == 2
    assert message in capsys.readouterr().err
    assert kfp_server.requests == []


def test_upload_creates_the_pipeline_then_new_versions(kfp_server, tmp_path, capsys):
    assert main(["upload", CONFIG, "--host", kfp_server.url]) == 0
    (pipeline,) = kfp_server.pipelines.values()
    assert pipeline["display_name"] == "kubenas-mnist1d-nb201"
    assert pipeline["spec"] == compiled_docs(tmp_path)
    assert f"#/pipelines/details/{pipeline['pipeline_id']}" in capsys.readouterr().out
    # the UI form's defaults are the config's values
    inputs = pipeline["spec"][0]["root"]["inputDefinitions"]["parameters"]
    assert json.loads(inputs["config_json"]["defaultValue"])["name"] == "mnist1d-nb201"

    assert main(["upload", CONFIG, "--host", kfp_server.url, "--version", "v2"]) == 0
    out = capsys.readouterr().out
    versions = kfp_server.versions[pipeline["pipeline_id"]]
    assert [v["display_name"] for v in versions] == ["kubenas-mnist1d-nb201", "v2"]
    assert f"/version/{versions[-1]['pipeline_version_id']}" in out
    # the same version name twice is the server's error, reported in one line
    assert main(["upload", CONFIG, "--host", kfp_server.url, "--version", "v2"]) == 2
    assert "HTTP 409" in capsys.readouterr().err


def test_in_cluster_service_account_token(kfp_server, tmp_path, monkeypatch, capsys):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    monkeypatch.delenv("KF_PIPELINES_TOKEN")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", kfp_server.url)  # kfp's own variable, no --host
    assert main(["submit", CONFIG]) == 0
    assert_no_token_printed(capsys)
    assert {r.headers["authorization"] for r in kfp_server.requests} == {f"Bearer {TOKEN}"}


def test_a_rejected_token_is_reported_without_being_printed(kfp_server, monkeypatch, capsys):
    monkeypatch.setenv("KF_PIPELINES_TOKEN", TOKEN[::-1])
    assert main(["submit", CONFIG, "--host", kfp_server.url]) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "KF_PIPELINES_TOKEN" in err and TOKEN[::-1] not in err
    assert kfp_server.runs == {}


def test_missing_host_and_unreachable_server(monkeypatch, capsys):
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    assert main(["submit", CONFIG]) == 2
    assert "pass --host URL or set KF_PIPELINES_ENDPOINT" in capsys.readouterr().err
    assert main(["submit", CONFIG, "--host", "kubeflow.example.com"]) == 2
    assert "with its scheme" in capsys.readouterr().err
    assert main(["submit", CONFIG, "--host", "http://127.0.0.1:9"]) == 2
    assert "http://127.0.0.1:9" in capsys.readouterr().err


def test_a_bad_config_is_refused_before_any_request(kfp_server, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**yaml.safe_load(open(CONFIG)), "budget": {"rounds": 0}}))
    assert main(["submit", str(bad), "--host", kfp_server.url]) == 2
    assert "budget.rounds" in capsys.readouterr().err
    assert kfp_server.requests == []


def test_parameters_over_the_api_limit_are_refused(monkeypatch):
    config = load_config(CONFIG)
    assert len(json.dumps(cluster.pipeline_arguments(config))) < cluster.PARAMETERS_LIMIT
    monkeypatch.setattr(cluster, "PARAMETERS_LIMIT", 100)
    with pytest.raises(cluster.ClusterError, match="at most 100"):
        cluster.pipeline_arguments(config)
