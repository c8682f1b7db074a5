"""A one-shot search's rounds (``oneshot:`` in the config): the same pipeline stages, with a supernet where a
strategy's candidates would be (the :class:`~kubenas.rounds.Rounds` that :func:`kubenas.rounds.rounds` chooses).

- *sample*: the round's supernet job, the epoch count to reach, for one worker;
- *train* (the GPU node): resume the supernet from its checkpoint in S3 and train it to that epoch,
  checkpointing after every epoch, so that a failed pod resumes where it stopped;
- *update*: derive and rank architectures with the shared weights, and commit them as the round's rows;
- *export*: unchanged: the best architecture of the last round is retrained from scratch.

The checkpoint ``oneshot/latest.pt`` holds the supernet's and optimisers' tensors, torch's RNG and the
method's JSON state, in one object (one S3 write, so tensors and state never disagree), loaded with
``weights_only=True``.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import torch

from kubenas import history
from kubenas.arch import arch_id
from kubenas.context import Context, say
from kubenas.core import Candidate, Result
from kubenas.estimators.training import count_macs
from kubenas.oneshot import OneShot, make_oneshot
from kubenas.store import SearchStore

SUPERNET = "supernet"  # the id of a one-shot round's training result
CHECKPOINT = "oneshot/latest.pt"
LOGGED_PER_ROUND = 10  # the best ranked architectures of a round get a nested MLflow run each


def _method(ctx: Context, total_epochs: int, device: str | None = None) -> OneShot:
    """The configured method with its supernet, resumed from the checkpoint when there is one."""
    cfg = ctx.cfg
    m = make_oneshot(
        cfg.oneshot.method,
        ctx.space,
        seed=cfg.seed,
        amp=cfg.estimator.to_recipe().amp,
        device=device,
        **({"recipe": cfg.estimator.to_recipe()} if cfg.estimator.recipe is not None else {}),
        **cfg.oneshot.options,
    )
    m.setup(ctx.search_data.input_shape, ctx.search_data.num_classes, total_epochs, cfg.fidelity.width_mult)
    blob = ctx.store.get_bytes(CHECKPOINT)
    if blob is not None:
        saved = torch.load(io.BytesIO(blob), weights_only=True, map_location=m.device)
        m.load_state_dict(json.loads(saved.pop("state_json")))
        m.load_tensor_state(saved)
    m.total_epochs = total_epochs  # a resumed search plans more rounds: the schedule stretches to them
    return m


def _save(store: SearchStore, m: OneShot) -> None:
    buf = io.BytesIO()
    torch.save({**m.tensor_state(), "state_json": json.dumps(m.state_dict())}, buf)
    store.put_bytes(CHECKPOINT, buf.getvalue())


class OneShotRounds:
    """The :class:`~kubenas.rounds.Rounds` of a one-shot search: each round trains the supernet further, then ranks
    architectures with its weights."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def ask(self, round_index: int, committed, start_round: int) -> dict[str, Any]:
        """The round's supernet job, for one worker: the epoch to train to, of how many in all."""
        cfg = self.ctx.cfg
        job = {
            "target_epochs": (round_index + 1) * cfg.oneshot.epochs,
            "total_epochs": (start_round + cfg.budget.rounds) * cfg.oneshot.epochs,
        }
        say(f"round {round_index}: train the {cfg.oneshot.method} supernet to epoch {job['target_epochs']}")
        return {"candidates": [], "supernet": job, "state": None, "workers": 1}

    def train(self, round_index: int, worker: int, asked: dict[str, Any]) -> list[dict[str, Any]]:
        """Train the supernet to the round's epoch; a crash (a non-finite loss, out of memory) is recorded as the
        round's failed result, and the last good checkpoint stays."""
        ctx = self.ctx
        job, parent_run_id = asked["supernet"], asked["parent_run_id"]
        data = ctx.search_data
        start, records = time.perf_counter(), []
        try:
            m = _method(ctx, job["total_epochs"])
            if m.epochs_done > job["target_epochs"]:
                raise RuntimeError(
                    f"the checkpoint is at epoch {m.epochs_done}, past this round's {job['target_epochs']}"
                )
            while m.epochs_done < job["target_epochs"]:
                record = m.train_epoch(data)
                _save(ctx.store, m)
                records.append(record)
                extra = ", ".join(
                    f"{k} {v:.3f}"
                    for k, v in record.items()
                    if isinstance(v, float) and k not in ("train_loss", "seconds")
                )
                say(
                    f"round {round_index} supernet epoch {m.epochs_done}/{job['target_epochs']} on {m.device.type}: "
                    f"loss {record['train_loss']:.4f} ({record['seconds']:.1f} s){', ' + extra if extra else ''}"
                )
            status, error = "ok", None
        except Exception as exc:  # noqa: BLE001 - recorded, and the round's update reports it
            status, error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
            say(f"round {round_index} supernet FAILED: {error}")
        seconds = time.perf_counter() - start
        row = {
            "id": SUPERNET,
            "status": status,
            "error": error,
            "cost": seconds,
            "records": records,
            "metrics": {"train_seconds": seconds, "epochs_trained": len(records)},
        }
        ctx.store.write_results(round_index, worker, [row])
        for r in records:
            ctx.tracker.log_round(
                parent_run_id,
                r["epoch"],
                {f"supernet_{k}": float(v) for k, v in r.items() if isinstance(v, (int, float)) and k != "epoch"},
            )
        return [row]

    def tell(self, round_index: int, asked: dict[str, Any], rows: list[dict[str, Any]], past):
        """Rank the round's architectures with the trained supernet; returns the rows, the method's state and the
        best row."""
        ctx, cfg = self.ctx, self.ctx.cfg
        job = asked["supernet"]
        trained = next((r for r in rows if r["id"] == SUPERNET), None)
        if trained is None or trained["status"] != "ok":
            why = trained["error"] if trained else "the training task left no result"
            raise RuntimeError(
                f"round {round_index}: the supernet did not train ({why}); the last checkpoint is kept, "
                "so re-running the search resumes from it"
            )
        data = ctx.search_data
        m = _method(ctx, job["total_epochs"], device="cpu")
        if m.epochs_done != job["target_epochs"]:
            raise RuntimeError(
                f"round {round_index}: the supernet checkpoint is at epoch {m.epochs_done}, not {job['target_epochs']}"
            )
        start = time.perf_counter()
        archs = m.propose(cfg.oneshot.candidates)
        scores = m.score(archs, data, cfg.oneshot.recalibration_batches)
        seconds = (time.perf_counter() - start) / max(1, len(archs))
        space = m.space
        out = []
        for arch, score in zip(archs, scores):
            model = space.build(arch, data.input_shape, data.num_classes, width_mult=cfg.fidelity.width_mult)
            metrics = {
                "val_acc": score,
                "oneshot_score": m.score_kind,
                "supernet_epochs": m.epochs_done,
                "params": sum(p.numel() for p in model.parameters()),
                "macs": count_macs(model, data.x_val[:1]),
            }
            cand = Candidate(f"{round_index:05d}-{arch_id(arch)[:8]}", arch)
            out.append(
                history.row(
                    space,
                    cand,
                    Result(cand.id, "ok", metrics, cost=seconds),
                    {"oneshot": cfg.oneshot.method, "supernet_epochs": m.epochs_done},
                    round_index,
                )
            )
        out.sort(key=lambda r: -r["metrics"]["val_acc"])
        for row in out[:LOGGED_PER_ROUND]:
            ctx.tracker.log_candidate(asked["parent_run_id"], row, round_index, cfg)
        best = out[0] if out else None
        say(
            f"round {round_index}: ranked {len(out)} architecture(s) with the shared weights ({m.score_kind}) in "
            f"{seconds * len(out):.1f} s"
            + (f"; best {best['metrics']['val_acc']:.4f} {best['genotype']}" if best else "")
        )
        best_entry = (
            None if best is None else {"id": best["id"], "arch": best["arch"], "value": best["metrics"]["val_acc"]}
        )
        return out, m.state_dict(), best_entry

    def winner(self, state, past: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, None]:
        """The best-ranked architecture of the last committed round (earlier rounds were ranked by a supernet
        trained for fewer epochs)."""
        if not past:
            return None, None
        last = max(r["round"] for r in past)
        best = next(iter(history.ranked([r for r in past if r["round"] == last], "val_acc", "max")), None)
        return (
            None if best is None else {"id": best["id"], "arch": best["arch"], "value": best["metrics"]["val_acc"]}
        ), None

    def train_seconds(self, rows: list[dict[str, Any]]) -> float:
        """The supernet's training in the rounds of ``rows`` (one worker trains it)."""
        store = self.ctx.store
        return sum(r["cost"] for k in sorted({r["round"] for r in rows}) for r in store.read_results(k, 0))

    def describe(self, rows: list[dict[str, Any]], seconds: float) -> str:
        return (
            f"{len(rows)} architectures ranked with a {self.ctx.cfg.oneshot.method} supernet trained for "
            f"{seconds:.0f} s"
        )

    def report(self, state: dict[str, Any] | None, exported: str | None = None):
        """The objective, and the supernet's statistics per epoch."""
        from kubenas.report import View

        cfg = self.ctx.cfg
        return View(
            cfg.objective.metric, cfg.objective.mode, exported=exported, supernet_stats=(state or {}).get("stats")
        )
