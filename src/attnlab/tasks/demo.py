"""``attnlab demo``: a character-level GPT trained on the bundled tiny Shakespeare, with a report.

Dimension key: L layers, H heads, T characters (context), V vocabulary.

The run, in one folder (default ``./attnlab-demo``)::

    model/            the trained model folder (GPT-2 layout, HF-loadable) + checkpoints/ + metrics.csv
    samples.txt       text sampled before and after training
    attention.png     every layer x head attention pattern over one line of Shakespeare
    attention.html    the interactive attention view (offline, self-contained)
    loss.png          training and validation loss
    report.html       one page with all of the above

Running it again reuses a finished model (sampling and drawing only, seconds) or resumes an unfinished
one from its last checkpoint; ``fresh=True`` starts over. Training stops early, with a checkpoint, when
the time budget runs out, so the whole command stays within it on slow machines.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnlab.data import Tokenizer
from attnlab.tasks.common import (
    TASK_FILE,
    TimeBudget,
    bundled_text,
    fit_within,
    load_model,
    read_task_info,
    save_model,
)
from attnlab.tasks.lm import LMRecipe, LMRun, evaluate_lm, lm_recipe, sample_text

VIEW_TEXT = "ROMEO:\nBut, soft! what light through yonder window breaks?"
RESERVE_S = 25.0  # seconds kept for sampling, drawing and the report after training


@dataclass
class DemoResult:
    out_dir: Path
    reused: bool
    step: int
    finished: bool
    val_loss: float
    sample_before: str | None
    sample_after: str
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, flush=True)


def _reusable(model_dir: Path, recipe: LMRecipe) -> bool:
    info = read_task_info(model_dir)
    return bool(info.get("finished")) and info.get("recipe") == dataclasses.asdict(recipe) and \
        (model_dir / "model.safetensors").is_file()


def _other_settings(model_dir: Path, recipe: LMRecipe) -> list[str]:
    """Recipe fields, other than the step count, in which the run saved in ``model_dir`` differs.

    A non-empty list means the saved run cannot be resumed with ``recipe`` (e.g. a demo folder written
    by an earlier attnlab version, whose demo used another model); fields the saved recipe lacks count.
    """
    saved = read_task_info(model_dir).get("recipe")
    if not isinstance(saved, dict):
        return []
    now = dataclasses.asdict(recipe)
    return [k for k in now if k != "max_steps" and saved.get(k, "<absent>") != now[k]]


def _clear(model_dir: Path) -> None:
    """Remove a previous demo model folder — only when it is recognisably one (never an arbitrary folder)."""
    if not model_dir.exists():
        return
    if not ((model_dir / TASK_FILE).is_file() or (model_dir / "checkpoints").is_dir()):
        raise ValueError(f"{model_dir} exists but is not an attnlab demo model folder; choose another --out")
    shutil.rmtree(model_dir)


def _train(
    run: LMRun, budget_s: float, *, device: str, progress: bool, prompt: str, sample_tokens: int, quiet: bool,
) -> tuple[Any, str, float]:
    """(trainer, the untrained sample, validation loss) after training within ``budget_s`` seconds."""
    trainer = run.trainer(device=device, progress=progress)
    first = run.out_dir / "sample_before.txt"  # the untrained model's text, kept for resumed runs
    if trainer.step and first.is_file():
        before = first.read_text(encoding="utf-8")
        _say(f"resuming the unfinished run at step {trainer.step}", quiet)
    else:
        before = sample_text(run.model, run.tokenizer, prompt, max_new_tokens=sample_tokens, seed=0)
        first.write_text(before, encoding="utf-8")
    _say(f"\n--- sample before training ---\n{before}\n", quiet)
    r = run.recipe
    _say(f"training a {r.n_layers}-layer, {r.n_heads}-head, {r.d_model}-wide GPT ({run.model.num_parameters():,} "
         f"parameters) on {run.data.train_tokens.numel():,} characters, context {r.block_size}, batch {r.batch_size}, "
         f"{r.max_steps} steps (time budget {budget_s:.0f} s)", quiet)
    finished, final = fit_within(trainer, TimeBudget(budget_s))
    if not finished:
        _say(f"time budget reached at step {trainer.step}; checkpoint saved — run `attnlab demo` again to "
             "continue", quiet)
    val_loss = final["nll"] if final else evaluate_lm(run.model, run.eval_batches)["loss"]
    return trainer, before, val_loss


def pick_threads(threads: int | None, device: str) -> str | None:
    """Set torch's CPU thread count; ``None`` picks 1 when other work already fills the cores.

    OpenMP threads that share busy cores with other processes wait on each other: on a loaded 2-core
    machine 2 threads were measured 8x slower per step than 1. Returns a note for the user, if any.
    """
    if threads is not None:
        torch.set_num_threads(max(1, threads))
        return None
    cores = os.cpu_count() or 1
    if device not in ("auto", "cpu") or torch.cuda.is_available() or cores < 2 or not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[0]
    if load < 0.75 * cores or torch.get_num_threads() == 1:
        return None
    torch.set_num_threads(1)
    return f"the CPU is busy (load average {load:.1f} on {cores} cores): training with 1 thread (--threads N overrides)"


def run_demo(
    out_dir: str | Path = "attnlab-demo", *, steps: int | None = None, time_budget: float = 270.0,
    fresh: bool = False, prompt: str = "ROMEO:", sample_tokens: int = 300, device: str = "auto",
    progress: bool = True, quiet: bool = False, started: float | None = None, threads: int | None = None,
) -> DemoResult:
    """Train (or reuse) the demo model, sample, draw attention, write the report; see the module docstring."""
    started = time.perf_counter() if started is None else started
    out = Path(out_dir)
    model_dir = out / "model"
    recipe = lm_recipe("demo", max_steps=steps)
    changed = [] if fresh else _other_settings(model_dir, recipe)
    if changed:
        _say(f"{model_dir} holds a demo model trained with other settings ({', '.join(changed)}); "
             "training a new one in its place", quiet)
    if fresh or changed:
        _clear(model_dir)
    reused = _reusable(model_dir, recipe)
    if reused:
        model, tok, info = load_model(model_dir)
        _say(f"reusing the model trained earlier in {model_dir} (step {info['step']}); --fresh trains a new one", quiet)
    else:
        _say(f"attnlab demo: a character-level GPT learns to write Shakespeare; output folder {out}", quiet)
        note = pick_threads(threads, device)
        if note:
            _say(note, quiet)
        run = LMRun.prepare(bundled_text(), model_dir, recipe)
        budget = time_budget - RESERVE_S - (time.perf_counter() - started)
        trainer, before, val_loss = _train(run, budget, device=device, progress=progress, prompt=prompt,
                                           sample_tokens=sample_tokens, quiet=quiet)
        model, tok = run.model, run.tokenizer
        info = {"task": "lm", "recipe": dataclasses.asdict(recipe), "step": trainer.step,
                "finished": trainer.step >= recipe.max_steps, "val_loss": val_loss,
                "val_ppl": math.exp(min(val_loss, 50.0)), "data": "tinyshakespeare", "sample_before": before}
        save_model(model, model_dir, tokenizer=tok, info=info)
    model.eval()
    step, finished, val_loss, before = info["step"], info["finished"], info["val_loss"], info.get("sample_before")
    after = sample_text(model, tok, prompt, max_new_tokens=sample_tokens, seed=0)
    _say(f"\n--- sample after training (step {step}, validation loss {val_loss:.3f}) ---\n{after}\n", quiet)
    result = DemoResult(out, reused, step, finished, val_loss, before, after)
    result.files = write_outputs(result, model, tok, model_dir)
    result.seconds = time.perf_counter() - started
    _say(f"report: {result.files['report']}  (attention heatmap {result.files['attention_png']}, "
         f"interactive view {result.files['attention_html']})", quiet)
    _say(f"continue with: attnlab generate --model {model_dir} \"JULIET:\"    [{result.seconds:.0f} s]", quiet)
    return result


# ----------------------------------------------------------------------------------------------------
# outputs: samples, attention figures, loss curve, HTML report
# ----------------------------------------------------------------------------------------------------
def write_outputs(result: DemoResult, model: nn.Module, tok: Tokenizer, model_dir: Path) -> dict[str, Path]:
    out = result.out_dir
    files = {"samples": out / "samples.txt", "attention_png": out / "attention.png",
             "attention_html": out / "attention.html", "loss_png": out / "loss.png", "report": out / "report.html"}
    before = result.sample_before
    files["samples"].write_text(
        f"=== before training ===\n{before or '(not recorded)'}\n\n=== after training (step {result.step}) ===\n"
        f"{result.sample_after}\n", encoding="utf-8")
    attention_figures(model, tok, files["attention_png"], files["attention_html"])
    has_curve = loss_figure(model_dir / "metrics.csv", files["loss_png"])
    if not has_curve:
        files.pop("loss_png")
    files["report"].write_text(report_html(result, files, model), encoding="utf-8")
    return files


def attention_figures(model: nn.Module, tok: Tokenizer, png: Path, page: Path, text: str = VIEW_TEXT) -> None:
    """Every layer x head pattern of ``model`` on ``text``: a PNG grid and the interactive HTML view."""
    from attnlab.interp import prepare_inputs, run_with_capture
    from attnlab.viz import plot_heads, save_attention_view

    ctx = int(getattr(model.config, "max_len", len(text)))
    prepared = prepare_inputs(model, tok, text[:ctx], bos=False)
    _, capture = run_with_capture(model, *prepared.args, **prepared.kwargs, points=("pattern",))
    group = capture.groups[0]
    patterns = capture.stack("pattern", group)[:, 0]  # (L, H, T, T)
    labels = prepared.sides["input"].labels
    fig = plot_heads(patterns, labels, labels, layers=capture.layers(group), max_labels=40,
                     title=f"attention of the demo GPT on {text.splitlines()[-1]!r}")
    fig.savefig(png, dpi=110)
    save_attention_view(page, capture, prepared, title="attnlab demo: attention of a character-level GPT")


def loss_figure(metrics_csv: Path, png: Path) -> bool:
    """Training and validation loss against step, from the Trainer's metrics.csv; False when there is none."""
    from matplotlib.figure import Figure

    if not metrics_csv.is_file():
        return False
    series: dict[str, tuple[list[int], list[float]]] = {"train": ([], []), "eval": ([], [])}
    with metrics_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["name"] == "loss" and row["split"] in series:
                series[row["split"]][0].append(int(row["step"]))
                series[row["split"]][1].append(float(row["value"]))
    if not series["train"][0]:
        return False
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(*series["train"], label="train (batch)", lw=1, alpha=0.7)
    if series["eval"][0]:
        ax.plot(*series["eval"], "o-", label="validation", lw=2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / character)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(png, dpi=110)
    return True


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def report_html(result: DemoResult, files: dict[str, Path], model: nn.Module) -> str:
    """A self-contained page (images inlined) describing the run."""
    c = model.config
    rows = [("model", f"GPT, {c.n_layers} layers, {c.n_heads} heads, width {c.d_model}, context {c.max_len}, "
                      f"{model.num_parameters():,} parameters"),
            ("data", "tiny Shakespeare (1,115,394 characters; last 10 % held out), character-level"),
            ("steps", f"{result.step}" + ("" if result.finished else " (stopped by the time budget)")),
            ("validation loss", f"{result.val_loss:.3f} nats/char (perplexity {math.exp(result.val_loss):.2f})")]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    curve = f"<h2>Loss</h2>{_img(files['loss_png'])}" if "loss_png" in files else ""
    before = html.escape(result.sample_before or "(not recorded)")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>attnlab demo report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; }}
pre {{ background: #f6f6f4; padding: 1em; white-space: pre-wrap; border-radius: 6px; }}
table {{ border-collapse: collapse; }} th, td {{ text-align: left; padding: 0.3em 1em 0.3em 0; }}
img {{ max-width: 100%; }} .cols {{ display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }}
</style></head><body>
<h1>attnlab demo: a character-level GPT writes Shakespeare</h1>
<table>{table}</table>
<div class="cols"><div><h2>Before training</h2><pre>{before}</pre></div>
<div><h2>After training</h2><pre>{html.escape(result.sample_after)}</pre></div></div>
{curve}
<h2>Attention</h2>
<p>Each panel is one head: row i shows how much the character at position i attends to every earlier
character (causal, so the upper triangle is empty). Open the
<a href="{html.escape(files['attention_html'].name)}">interactive attention view</a> to hover over tokens.</p>
{_img(files['attention_png'])}
<h2>Next</h2>
<pre>attnlab generate --model {html.escape(str(result.out_dir / 'model'))} --max-new-tokens 500 "JULIET:"
attnlab train lm --data tinyshakespeare --preset char-cpu --out runs/shakespeare</pre>
</body></html>
"""


def result_json(result: DemoResult) -> str:
    payload = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(result).items()}
    payload["files"] = {k: str(v) for k, v in result.files.items()}
    return json.dumps(payload, indent=2)

