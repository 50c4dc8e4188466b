"""``attnlab serve``: an HTTP inference server for one model folder (FastAPI + uvicorn).

Dimension key: none (command-line glue over :mod:`attnlab.serve`).
"""

from __future__ import annotations

import argparse

EPILOG = """examples:
  attnlab serve --model runs/shakespeare                    # text-generation on http://127.0.0.1:8000
  attnlab serve --model runs/sst2 --port 8080               # sentiment-analysis (task read from the folder)
  attnlab serve --model bert-mlm --task fill-mask --max-concurrency 2

  curl -s localhost:8000/health
  curl -s localhost:8000/v1/completions -H 'content-type: application/json' \\
       -d '{"prompt": "ROMEO:", "max_tokens": 40, "temperature": 0.8}'
  curl -sN localhost:8000/v1/completions -H 'content-type: application/json' \\
       -d '{"prompt": "ROMEO:", "max_tokens": 40, "stream": true}'          # server-sent events
  curl -s localhost:8000/v1/pipeline -H 'content-type: application/json' \\
       -d '{"inputs": ["a gripping film", "a dull mess"], "parameters": {"top_k": 2}}'

Routes: GET /health, GET /v1/models, POST /v1/pipeline (the folder's task, HF Inference API shape),
POST /v1/completions (OpenAI-style, text-generation models). It binds 127.0.0.1 by default and has no
authentication: put a reverse proxy with auth in front before binding a public address. Limits:
bodies over 1 MB get 413, requests beyond --max-concurrency get 429, bad fields get 422. No request
field can load a file: the server runs only the folder it was started with.
"""


def _run(args: argparse.Namespace) -> int:
    try:
        from attnlab.serve import run
    except ImportError as e:
        raise ValueError(f"attnlab serve needs the serve extra: pip install 'attnlab[serve]' ({e})") from None
    run(args.model, task=args.task, host=args.host, port=args.port, name=args.name,
        max_concurrency=args.max_concurrency, max_body_bytes=args.max_body_bytes, device=args.device,
        batch_size=args.batch_size, log_level=args.log_level)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="serve a model folder over HTTP (pipeline task + OpenAI-style completions)",
        description="Serve one model folder over HTTP: its pipeline task, and /v1/completions for text generation.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model folder (config.json, model.safetensors, tokenizer.json)")
    p.add_argument("--task", default=None, help="pipeline task (default: read from the folder)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--name", default=None, help="model id reported by the API (default: the folder's name)")
    p.add_argument("--max-concurrency", type=int, default=4, help="requests in flight before 429 (default 4)")
    p.add_argument("--max-body-bytes", type=int, default=None, help="request body limit (default 1000000)")
    p.add_argument("--batch-size", type=int, default=8, help="inputs per forward pass within one request")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=_run)
