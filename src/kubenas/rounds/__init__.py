"""How a search chooses and judges architectures, one round at a time: the :class:`Rounds` interface.

A search runs rounds of *ask* (what to evaluate), *train* (one worker's share of it), *tell* (rank and commit),
then picks a *winner*. Two implementations: a strategy's rounds (:mod:`kubenas.rounds.strategy`: ask a strategy
for candidates, train each with the estimator) and a one-shot search's (:mod:`kubenas.oneshot.rounds`: train a
weight-sharing supernet, rank architectures with it). :func:`rounds` chooses between them, the one place that
does; the pipeline steps, the CLI, the local runner, tracking and status only use the interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kubenas.context import Context
    from kubenas.report import View
    from kubenas.store import Committed

Row = dict[str, Any]


class Rounds(Protocol):
    """One search method's rounds. Each method runs in a fresh process (a pipeline step), from the store."""

    def ask(self, round_index: int, committed: Committed, start_round: int) -> dict[str, Any]:
        """The round's asked document: ``candidates`` (dicts), ``state`` (JSON), ``workers`` (how many training
        tasks share it) and whatever :meth:`train` needs besides."""

    def train(self, round_index: int, worker: int, asked: dict[str, Any]) -> list[Row]:
        """One worker's share of the round; every row is written to the store as soon as it exists."""

    def tell(
        self, round_index: int, asked: dict[str, Any], rows: list[Row], history: list[Row]
    ) -> tuple[list[Row], dict[str, Any] | None, dict[str, Any] | None]:
        """The round's rows to commit, the state to commit with them, and the best so far (``{"id", "arch",
        "value"}`` or None)."""

    def winner(
        self, state: dict[str, Any] | None, history: list[Row]
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
        """The architecture to export (None when none qualifies), and the Pareto front it was picked from (None
        with one objective)."""

    def describe(self, rows: list[Row], seconds: float) -> str:
        """What this run did, in a few words: ``rows`` it committed, ``seconds`` of training."""

    def train_seconds(self, rows: list[Row]) -> float:
        """The training time behind ``rows`` (committed by this run)."""

    def report(self, state: dict[str, Any] | None, exported: str | None = None) -> View:
        """What the search's report shows besides the rows."""


def methods() -> dict[str, dict[str, Any]]:
    """Every registered way to choose architectures, by kind (``kubenas strategies`` lists them)."""
    from kubenas.oneshot import ONESHOT
    from kubenas.strategies import STRATEGIES

    return {"strategies": STRATEGIES, "one-shot methods (the config's oneshot.method, for nb201 and cell)": ONESHOT}


def rounds(ctx: Context) -> Rounds:
    """The rounds of the search ``ctx`` describes: its one-shot supernet's when it has one, else its strategy's."""
    if ctx.cfg.oneshot is not None:
        from kubenas.oneshot.rounds import OneShotRounds

        return OneShotRounds(ctx)
    from kubenas.rounds.strategy import StrategyRounds

    return StrategyRounds(ctx)
