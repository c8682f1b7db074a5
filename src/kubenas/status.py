"""``kubenas status NAME``: where a search stands, read from its store alone, so that it works for a local search
and for one running on a cluster (given the store's endpoint): rounds committed, best so far, the open round's
candidates still in flight, the run that holds the search, the last error and the last export."""

from __future__ import annotations

import time
from typing import Any

from kubenas import history
from kubenas import lease as leases
from kubenas.config import search_method
from kubenas.core import UserError
from kubenas.store import SearchStore


class NoSuchSearch(UserError, LookupError):
    """The store holds no search of that name; the message lists those it holds."""


def searches(store: SearchStore, prefix: str) -> list[str]:
    """The names of the searches stored under ``prefix`` (one listing)."""
    keys = store.blobs.list(f"{prefix.strip('/')}/")
    return sorted({k.split("/")[-2] for k in keys if k.endswith("/config.json")})


def search_status(store: SearchStore, prefix: str = "searches") -> dict[str, Any]:
    config = store.read_config()
    if config is None:
        known = searches(store, prefix)
        raise NoSuchSearch(
            f"no search {store.search!r} in {store.blobs.uri_scheme}://{store.bucket}/{prefix}; "
            f"searches there: {', '.join(known) or 'none'}"
        )
    objective = config.get("objective") or {}
    metric, mode = objective.get("metric", "val_acc"), objective.get("mode", "max")
    committed = store.read_committed()
    rows = committed.rows
    best = history.ranked(rows, metric, mode)
    failed = [r for r in rows if r["status"] != "ok"]
    out: dict[str, Any] = {
        "search": store.search,
        "uri": store.uri,
        "space": (config.get("space") or {}).get("name"),
        "method": search_method(config),
        "dataset": (config.get("dataset") or {}).get("name"),
        "metric": metric,
        "mode": mode,
        "rounds_committed": committed.last + 1,
        "evaluations": len(rows),
        "failed": len(failed),
        "best": None
        if not best
        else {
            "id": best[0]["id"],
            "value": best[0]["metrics"][metric],
            "round": best[0]["round"],
            "genotype": best[0]["genotype"],
        },
        "last_error": None
        if not failed
        else {"id": failed[-1]["id"], "round": failed[-1]["round"], "error": failed[-1].get("error")},
    }
    open_round = committed.last + 1
    asked = store.read_asked(open_round)
    if asked is not None:
        done = store.read_all_results(open_round)
        total = len(asked.get("candidates") or []) or (1 if asked.get("supernet") else 0)
        out["open_round"] = {
            "round": open_round,
            "candidates": total,
            "results": len(done),
            "in_flight": max(0, total - len(done)),
            "failed": [{"id": r["id"], "error": r.get("error")} for r in done if r["status"] != "ok"],
        }
        if out["open_round"]["failed"]:
            out["last_error"] = {"round": open_round, **out["open_round"]["failed"][-1]}
    lease = leases.Lease(store).read()
    if lease is not None:
        why = leases.stale(lease, time.time())
        out["run"] = {"holder": leases.holder_text(lease), "expires": lease.get("expires"), "stale": why}
    export = store.get_json("export.json")
    if export is not None:
        out["export"] = {k: export.get(k) for k in ("candidate_id", "model_name", "version", "alias", "test_acc")}
    return out


def render(s: dict[str, Any]) -> str:
    """The status as a few lines of text."""
    lines = [
        f"search {s['search']} in {s['uri']}: space {s['space']}, {s['method']}, dataset {s['dataset']}",
        f"rounds committed: {s['rounds_committed']}; evaluations: {s['evaluations']} ({s['failed']} failed)",
    ]
    b = s["best"]
    lines.append(
        f"best so far: {s['metric']} {b['value']:.4f}, candidate {b['id']} (round {b['round']}) {b['genotype']}"
        if b
        else f"best so far: none yet ({s['metric']}, {s['mode']})"
    )
    o = s.get("open_round")
    if o:
        lines.append(
            f"round {o['round']} open: {o['results']} of {o['candidates']} candidate(s) have a result, "
            f"{o['in_flight']} in flight or not started"
        )
    run = s.get("run")
    if run:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run["expires"])) if run.get("expires") else "?"
        lines.append(
            f"held by {run['holder']}"
            + (f"; no longer holds: {run['stale']}" if run["stale"] else f", until {when} unless renewed")
        )
    else:
        lines.append("no run holds it (the last run ended, or none started)")
    e = s.get("last_error")
    if e:
        lines.append(f"last error: round {e['round']} candidate {e['id']}: {e.get('error') or 'no result'}")
    x = s.get("export")
    if x:
        lines.append(
            f"last export: {x['candidate_id']} registered as {x['model_name']} version {x['version']} "
            f"({x['alias']}), test_acc {x['test_acc']:.4f}"
        )
    return "\n".join(lines)
