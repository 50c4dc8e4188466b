"""``attnlab viz attention|heads``: attention views and head-role tables for a saved model.

Dimension key: L layers, H heads, T query length, S key length.

``--model DIR`` is a model directory (config.json + model.safetensors; HF format or attnlab's own)
loaded with ``attnlab.from_pretrained``; text is tokenized with the ``tokenizer.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

EPILOG_ATTENTION = """examples:
  attnlab viz attention --model out/gpt --text "The cat sat on the mat." --out view.html
  attnlab viz attention --model out/gpt --text "Once upon a time" --max-new-tokens 12 --view steps --out steps.png
  attnlab viz attention --model out/mt --text "ein kleiner Test" --layers decoder.cross --out cross.png
  attnlab viz attention --model out/bert --text "Paris is the capital of France." --layers 0,-1 --heads 0,1,2
  attnlab viz attention --model out/vit --image cat.png --view rollout --out cat_attention.png

The output format follows the file name: .html is the interactive head/model view (works offline);
.png/.pdf/.svg is a static figure chosen with --view.
"""

EPILOG_HEADS = """examples:
  attnlab viz heads --model out/gpt --text "The cat sat on the mat. The cat sat on the mat."
  attnlab viz heads --model out/bert --text "Hello, world! Again." --top 3 --out bert.png --json bert.json
  attnlab viz heads --model out/mt --text "ein kleiner Test" --target "a small test"

Roles: previous/next-token (positional), delimiter, rare-word, duplicate-token and induction heads
score the attention mass on their target keys beyond chance (1 = always on target, 0 = uniform);
broad/focused rank the normalized entropy. Decoders are also probed with a repeated random sequence
for the duplicate and induction scores (--probe-len 0 turns it off).
"""

STATIC_VIEWS = ("grid", "average", "steps", "patches", "rollout")


def _parse_list(text: str | None) -> Any:
    """"0,1,-1" -> [0, 1, -1]; "decoder.cross" -> ["decoder.cross"]; mixed lists keep both kinds."""
    if text is None:
        return None
    items: list[int | str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            items.append(int(part))
        except ValueError:
            items.append(part)
    if not items:
        raise ValueError(f"empty selection {text!r}; give comma-separated indices or names")
    return items


def _parse_heads(text: str | None) -> list[int] | None:
    items = _parse_list(text)
    if items is not None and not all(isinstance(i, int) for i in items):
        raise ValueError(f"--heads takes comma-separated head indices, got {text!r}")
    return items


def load_model_and_tokenizer(path: str) -> tuple[Any, Any]:
    """The model in eval mode and its tokenizer (None when the directory has no tokenizer.json)."""
    import attnlab

    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such model directory (expected config.json + model.safetensors)")
    model = attnlab.from_pretrained(directory).eval()
    tokenizer = None
    if (directory / "tokenizer.json").is_file():
        from attnlab.interop import load_tokenizer

        tokenizer = load_tokenizer(directory)
    return model, tokenizer


def _prepare(args: argparse.Namespace) -> tuple[Any, Any]:
    from attnlab.interp import prepare_inputs

    model, tokenizer = load_model_and_tokenizer(args.model)
    counts = None
    if getattr(args, "token_counts", None):
        counts = json.loads(Path(args.token_counts).read_text(encoding="utf-8"))
        if not isinstance(counts, dict):
            raise ValueError(f"{args.token_counts}: expected a JSON object of token -> count")
    prepared = prepare_inputs(
        model, tokenizer, args.text, target=args.target, image=getattr(args, "image", None),
        max_new_tokens=getattr(args, "max_new_tokens", 0), bos=not getattr(args, "no_bos", False), token_counts=counts,
    )
    return model, prepared


def _pick_group(capture: Any, wanted: str | None, prefer: tuple[str, ...]) -> str:
    if wanted is not None:
        if wanted not in capture.groups:
            raise ValueError(f"no captured group {wanted!r}; captured: {capture.groups}")
        return wanted
    for group in prefer:
        if group in capture.groups:
            return group
    return capture.groups[0]


def _static_figure(args: argparse.Namespace, capture: Any, prepared: Any) -> Any:
    from attnlab import viz
    from attnlab.interp import attention_rollout

    view = args.view or ("rollout" if prepared.kind == "vision" else "steps" if args.max_new_tokens else "grid")
    prefer = ("decoder.cross",) if view == "steps" and prepared.kind == "encoder-decoder" else ()
    group = _pick_group(capture, args.group, prefer)
    q_side, k_side = (prepared.sides[s] for s in prepared.group_sides(capture.sites)[group])
    p = capture.stack("pattern", group)[:, 0]  # (L, h, T, S)
    layers, heads = capture.layers(group), capture.heads[capture.group_sites(group)[0].name]
    title = f"{Path(args.model).name}: {group}"
    if view in ("grid", "average"):
        average = "all" if view == "average" else (None if p.shape[0] * p.shape[1] <= 64 else "heads")
        return viz.plot_heads(p, q_side.labels, k_side.labels, layers=layers, heads=heads, average=average, title=title)
    if view == "steps":
        if prepared.prompt_len is None or prepared.prompt_len >= p.shape[-2]:
            raise ValueError(
                "the steps view needs generated tokens: pass --max-new-tokens N (decoders) or omit --target"
            )
        keys = None if k_side is q_side else k_side.labels
        return viz.plot_decoder_steps(p[-1].mean(0), q_side.labels, prompt_len=prepared.prompt_len, keys=keys,
                                      title=f"{title}, layer {layers[-1]}, mean of heads")
    if prepared.kind != "vision":
        raise ValueError(f"--view {view} is for vision models; use grid, average or steps")
    row = attention_rollout(capture.stack("pattern", group))[0, 0] if view == "rollout" else p[-1].mean(0)[0]
    weights = viz.patch_weights(row, prepared.grid, prefix=prepared.prefix)
    return viz.plot_patch_attention(prepared.image, weights, title=f"{title}: [CLS] {view}")


def run_attention(args: argparse.Namespace) -> int:
    from attnlab.interp import run_with_capture
    from attnlab.viz import save_attention_view

    model, prepared = _prepare(args)
    layers = _parse_list(args.layers)
    if args.view == "rollout":
        layers = None  # rollout multiplies through every layer
    heads = _parse_heads(args.heads)
    _, capture = run_with_capture(model, *prepared.args, layers=layers, heads=heads, **prepared.kwargs)
    out = Path(args.out)
    if out.suffix.lower() in (".html", ".htm"):
        title = args.title or f"{Path(args.model).name}: {args.text or args.image}"
        save_attention_view(out, capture, prepared, title=title, max_tokens=args.max_tokens)
    elif out.suffix.lower() in (".png", ".pdf", ".svg", ".jpg"):
        out.parent.mkdir(parents=True, exist_ok=True)
        _static_figure(args, capture, prepared).savefig(out, dpi=args.dpi)
    else:
        raise ValueError(f"--out {out}: use a .html (interactive) or .png/.pdf/.svg (static) file name")
    print(f"wrote {out} ({', '.join(capture.groups)}; layers {sorted(set(s.layer for s in capture.sites))})")
    return 0


def run_heads(args: argparse.Namespace) -> int:
    from attnlab.interp import analyze_heads, ranking_table
    from attnlab.viz import plot_head_scores

    model, prepared = _prepare(args)
    results = analyze_heads(model, prepared, layers=_parse_list(args.layers), probe_len=args.probe_len, seed=args.seed)
    print(ranking_table(results, top=args.top))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_head_scores(results).savefig(out, dpi=args.dpi)
    print(f"\nwrote {out}")
    if args.json:
        data = {
            r.group: {"layers": r.layers, "heads": r.heads,
                      "scores": {k: [[None if v != v else round(v, 6) for v in row] for row in g.tolist()]
                                 for k, g in r.scores.items()}}
            for r in results
        }
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory: config.json, model.safetensors, tokenizer.json")
    p.add_argument("--text", help="input text (source text for encoder-decoders)")
    p.add_argument("--target", help="encoder-decoders: target text (default: a greedy translation)")
    p.add_argument("--layers", help="comma-separated layer indices and/or site patterns, e.g. 0,-1 or decoder.cross")
    p.add_argument("--no-bos", action="store_true", help="decoders: do not prepend the BOS token")
    p.add_argument("--dpi", type=int, default=130, help="resolution of saved figures (default 130)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "viz", help="attention views (HTML, heatmaps) and head-role analysis",
        description="Visualize attention of a saved model: interactive HTML or static figures, and head roles.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="run 'attnlab viz attention --help' or 'attnlab viz heads --help' for examples",
    )
    sub = p.add_subparsers(dest="viz_command", metavar="{attention,heads}", required=True)
    a = sub.add_parser("attention", help="save an attention view (.html interactive, .png static)",
                       epilog=EPILOG_ATTENTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(a)
    a.add_argument("--image", help="vision models: the image file")
    a.add_argument("--out", default="attention.html", help="output: .html, .png, .pdf or .svg (default attention.html)")
    a.add_argument("--heads", help="comma-separated head indices (default all)")
    a.add_argument("--group", help="static figures: which attention group (e.g. decoder.cross); default the first")
    a.add_argument("--view", choices=STATIC_VIEWS, help="static figure kind (default grid; rollout for images)")
    a.add_argument("--max-new-tokens", type=int, default=0, help="first generate this many tokens greedily")
    a.add_argument("--max-tokens", type=int, default=1024, help="HTML: bin longer sequences to this many tokens")
    a.add_argument("--title", help="HTML page title")
    a.set_defaults(func=run_attention)
    h = sub.add_parser("heads", help="rank heads by role and save a layer x head grid PNG",
                       epilog=EPILOG_HEADS, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(h)
    h.add_argument("--out", default="heads.png", help="grid figure path (default heads.png)")
    h.add_argument("--json", help="also write all scores as JSON here")
    h.add_argument("--top", type=int, default=5, help="heads listed per role (default 5)")
    h.add_argument("--probe-len", type=int, default=32, help="decoders: random-probe length for induction (0: off)")
    h.add_argument("--seed", type=int, default=0, help="seed of the random probe")
    h.add_argument("--token-counts", help="JSON {token: corpus count} for rare-word heads (default: id-rank proxy)")
    h.set_defaults(func=run_heads, image=None, max_new_tokens=0)
