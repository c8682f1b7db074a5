"""A local run's progress, read from the lines its steps print: on a terminal a live status bar, elsewhere a line
per committed round with the best so far and the time left."""

from __future__ import annotations

import io

from kubenas.local_run import Progress, _Filter

LINES = [
    "[kubenas] search 's' (new search) in s3://kubenas/searches/s; MLflow run abc",
    "[kubenas] round 0 (#1 of this run): 3 candidate(s) for 2 worker(s)",
    "[kubenas] round 0 worker 1 candidate 00001-aa: val_acc=0.8213 (2.7 s) |x|",
    "[kubenas] round 0 worker 0 candidate 00000-bb: FAILED: Diverged: non-finite loss (nan) (0.1 s) |y|",
]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_counts_candidates_and_rounds_and_estimates_the_time_left():
    clock = Clock()
    p = Progress(rounds=3, metric="val_acc", clock=clock)
    assert all(p.see(line) is None for line in LINES)
    assert p.text().startswith("0 of 3 round(s) done, round 0: 2/3 candidate(s) trained, 2 evaluated (1 failed)")
    assert "no best yet" in p.text() and "left" not in p.text()
    p.see("[kubenas] round 0 worker 1 candidate 00002-cc: val_acc=0.7000 (1.0 s) |z|")
    clock.now = 130.0
    line = p.see("[kubenas] round 0 committed: 3 row(s), best val_acc 0.8213")
    assert line == (
        "[kubenas] progress: 1 of 3 round(s) done, 3 evaluated (1 failed), best val_acc 0.8213, "
        "30 s elapsed, about 60 s left before the export"
    )
    p.see("[kubenas] round 1 (#2 of this run): 3 candidate(s) for 2 worker(s)")
    p.see("[kubenas] export: seed 0 epoch 3/8: train_loss 0.2, val_acc 0.9 (3 s, about 5 s left)")
    assert "export epoch 3/8" in p.text()


def test_the_filter_prints_the_lines_that_matter_and_a_progress_line_per_round():
    out, log = io.StringIO(), io.StringIO()
    shown = _Filter(out, log, verbose=False, progress=Progress(2, "val_acc"))
    shown.write("\n".join(LINES[1:3]) + "\nkfp chatter\n[kubenas] round 0 committed: 1 row(s), best val_acc 0.8213\n")
    printed = out.getvalue().splitlines()
    assert printed[:2] == LINES[1:3] and "kfp chatter" not in printed
    assert printed[3].startswith("[kubenas] progress: 1 of 2 round(s) done") and "kfp chatter" in log.getvalue()


def test_the_live_view_lists_the_open_rounds_candidates_training_first():
    from rich.console import Console

    p = Progress(2, "val_acc")
    for line in (
        LINES[1],
        "[kubenas] round 0 worker 0 candidate 00000-bb: training (2 epoch(s))",
        "[kubenas] round 0 worker 1 candidate 00001-aa: training (2 epoch(s))",
        LINES[2],
    ):
        p.see(line)
    console = Console(file=io.StringIO(), width=120)
    console.print(p.view())
    shown = console.file.getvalue()
    assert shown.index("00000-bb") < shown.index("00001-aa")  # still training, listed first
    assert "training" in shown and "val_acc 0.8213" in shown
    out = io.StringIO()
    _Filter(out, io.StringIO(), verbose=False, progress=p).write(
        "[kubenas] round 0 worker 0 candidate 00002-cc: training (2 epoch(s))\n"
    )
    assert out.getvalue() == "" and p.candidates["00002-cc"] == "training"  # the live view's, not a printed line
