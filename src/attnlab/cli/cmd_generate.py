"""``attnlab generate``: continue a prompt with a trained language model folder.

Dimension key: none (command-line glue over :func:`attnlab.tasks.lm.sample_text`).
"""

from __future__ import annotations

import argparse

EPILOG = """examples:
  attnlab generate --model runs/shakespeare "ROMEO:"
  attnlab generate --model runs/shakespeare --max-new-tokens 500 --temperature 0.7 --top-k 40 "JULIET:"
  attnlab generate --model runs/shakespeare --greedy "To be, or not to be"
  attnlab generate --model attnlab-demo/model --num-samples 3 --seed 1     # empty prompt: starts on a newline

The model folder is one written by `attnlab train lm` or `attnlab demo` (or any GPT-2 folder with a
tokenizer.json). Text longer than the model's context is written with a sliding window.
"""


def _run(args: argparse.Namespace) -> int:
    from attnlab.tasks.common import load_model, resolve_device
    from attnlab.tasks.lm import sample_text

    model, tok, _ = load_model(args.model, device=resolve_device(args.device))
    prompt = " ".join(args.prompt)
    for k in range(args.num_samples):
        seed = None if args.seed is None else args.seed + 1000 * k
        text = sample_text(model, tok, prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                           top_k=args.top_k, seed=seed, greedy=args.greedy)
        if args.num_samples > 1:
            print(f"----- sample {k + 1} -----")
        print(text)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate", help="continue a prompt with a trained language model",
        description="Sample (or greedily decode) a continuation of PROMPT with a language-model folder.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("prompt", nargs="*", help="the prompt text (default: empty)")
    p.add_argument("--model", required=True, help="model folder (config.json, model.safetensors, tokenizer.json)")
    p.add_argument("--max-new-tokens", type=int, default=300)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=0, help="sample from the k most likely tokens (0: all)")
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same text)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_run)
