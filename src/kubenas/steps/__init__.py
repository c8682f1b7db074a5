"""The pipeline's steps: one function per KFP component, each run in its own process (or pod).

- *init* (:mod:`.init`) validates the config, checks S3 and MLflow, takes the lease, records (or resumes) the
  search and opens the MLflow parent run;
- *ask* (:func:`ask_round`, the *sample* component) opens a round and splits it over at most ``parallelism``
  workers;
- *train* (:func:`train_round`) is one worker: it does its share of the round in one process, so the imports,
  the dataset and (on a GPU node) the CUDA context are paid once. Each result is written as soon as it exists,
  so a crash or a retried pod loses at most the candidate in progress;
- *tell* (:func:`tell_round`, the *update* component) commits the round and decides ``continue`` or ``stop``;
- *export* (:mod:`.export`) retrains the winner, tests it once and registers it in MLflow.

Every step reads what it needs from the store and writes what it produces back, so any step can run on any node
and a re-run never duplicates work: candidate ids are deterministic and each round is committed only by its
history file. The method's part of a round is the search's :class:`~kubenas.rounds.Rounds`. Importing this
package costs no torch, MLflow or boto3.
"""

from kubenas.context import PROFILE, Context, context, end_promptly, say
from kubenas.steps.export import export_winner, winner_metrics
from kubenas.steps.init import FORM, IDENTITY, form_summary, init_search, with_overrides
from kubenas.steps.rounds import ask_round, scalar_metrics, stop_reason, tell_round, train_round
from kubenas.steps.summary import leaderboard, report_round, report_winner, search_summary

__all__ = [
    "FORM",
    "IDENTITY",
    "PROFILE",
    "Context",
    "ask_round",
    "context",
    "end_promptly",
    "export_winner",
    "form_summary",
    "init_search",
    "leaderboard",
    "report_round",
    "report_winner",
    "say",
    "scalar_metrics",
    "search_summary",
    "stop_reason",
    "tell_round",
    "train_round",
    "winner_metrics",
    "with_overrides",
]
