"""``attnlab demo``: train a character-level GPT on the bundled tiny Shakespeare and write a report.

Dimension key: none (command-line glue over :func:`attnlab.tasks.demo.run_demo`).
"""

from __future__ import annotations

import argparse
import time

_STARTED = time.perf_counter()  # the command's clock starts when the CLI imports its commands

EPILOG = """examples:
  attnlab demo                          # ~4 minutes on a 2-core CPU; writes ./attnlab-demo/report.html
  attnlab demo                          # again: reuses the trained model (seconds), or resumes an unfinished one
  attnlab demo --fresh                  # train a new model from scratch
  attnlab demo --out /tmp/demo --steps 300 --time-budget 2
  attnlab demo --prompt "JULIET:" --sample-tokens 600

What it does: trains a 4-layer GPT (0.8M parameters) on 1.1M characters of Shakespeare (public domain,
bundled with attnlab), prints a sample before and after training, and writes into the output folder:
model/ (the model: `attnlab generate --model attnlab-demo/model "ROMEO:"`), samples.txt, loss.png,
attention.png (every head's attention pattern), attention.html (interactive) and report.html.
Training checkpoints as it goes and stops early, with a checkpoint, if the time budget runs out.
"""


def _run(args: argparse.Namespace) -> int:
    from attnlab.tasks.demo import result_json, run_demo

    result = run_demo(
        args.out, steps=args.steps, time_budget=args.time_budget * 60, fresh=args.fresh, prompt=args.prompt,
        sample_tokens=args.sample_tokens, device=args.device, progress=not args.no_progress, quiet=args.quiet,
        started=_STARTED, threads=args.threads,
    )
    if args.json:
        print(result_json(result))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="train a tiny Shakespeare GPT on CPU in minutes; samples, attention heatmap, HTML report",
        description="The end-to-end demo: a character-level GPT learns to write Shakespeare.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="attnlab-demo", help="output folder (default: ./attnlab-demo)")
    p.add_argument("--steps", type=int, help="training steps (default 1500)")
    p.add_argument("--time-budget", type=float, default=4.5, metavar="MIN",
                   help="whole-command time limit in minutes; training stops early to meet it (default 4.5)")
    p.add_argument("--fresh", action="store_true", help="discard a previous demo model and train from scratch")
    p.add_argument("--prompt", default="ROMEO:", help="text the samples start from")
    p.add_argument("--sample-tokens", type=int, default=300, help="characters to sample")
    p.add_argument("--device", default="auto", help="auto (CUDA when available) or cpu")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores, or 1 when the CPU is already busy)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors (and --json)")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    p.set_defaults(func=_run)
