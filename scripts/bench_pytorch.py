"""PyTorch + transformers on the same benchmark as `nnsight bench`: a random-weight GPT-2 of a
given shape (small, medium, large, xl).

Run by scripts/bench.sh and scripts/bench-sizes.sh in a throwaway venv (torch==2.13.0+cpu,
transformers==5.2.0); never a dependency of the product. Prints one JSON object with the same
keys as `nnsight bench --json`; with --load, also the time from_pretrained takes to load the
shape's random checkpoint (saved once under /tmp), as a cluster's workers load theirs.
"""
import argparse
import json
import os
import resource
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--steps", type=int, default=64)
parser.add_argument("--repeats", type=int, default=7)
parser.add_argument("--shape", choices=["small", "medium", "large", "xl"], default="small")
parser.add_argument("--load", action="store_true", help="time loading the shape's checkpoint from disk")
args = parser.parse_args()

SHAPES = {"small": (12, 768, 12), "medium": (24, 1024, 16), "large": (36, 1280, 20), "xl": (48, 1600, 25)}
torch.set_num_threads(args.threads)
torch.manual_seed(0)
n_layer, n_embd, n_head = SHAPES[args.shape]
config = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_positions=1024, vocab_size=50257)
load_s = None
if args.load:
    checkpoint = f"/tmp/nnsight-bench-torch-gpt2-{args.shape}"
    if not os.path.exists(checkpoint + "/config.json"):
        GPT2LMHeadModel(config).save_pretrained(checkpoint)
    start = time.perf_counter()
    model = GPT2LMHeadModel.from_pretrained(checkpoint).eval()
    load_s = time.perf_counter() - start
else:
    model = GPT2LMHeadModel(config).eval()
V = config.vocab_size


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.inference_mode()
def prefill(n, last_only):
    ids = torch.randint(0, V, (1, n))
    keep = 1 if last_only else 0
    model(ids, logits_to_keep=keep)  # warm-up
    return statistics.median(timed(lambda: model(ids, logits_to_keep=keep)) for _ in range(args.repeats))


@torch.inference_mode()
def decode(batch):
    ids = torch.randint(0, V, (batch, 10))
    out = model(ids, use_cache=True, logits_to_keep=1)
    past = out.past_key_values
    token = out.logits[:, -1].argmax(-1, keepdim=True)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        out = model(token, past_key_values=past, use_cache=True)
        past = out.past_key_values
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


figures = {
    "model": f"gpt2-{args.shape}-shape (random weights), torch " + torch.__version__,
    "prefill_ms_10": round(prefill(10, True) * 1000, 3),
    "prefill_ms_128": round(prefill(128, False) * 1000, 3),
    "prefill_ms_128_last_logits": round(prefill(128, True) * 1000, 3),
    "decode_ms_per_token": round(decode(1) * 1000, 3),
    "decode_tokens_per_s_batch8": round(8 / decode(8), 3),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 3),
    "threads": torch.get_num_threads(),
}
if load_s is not None:
    figures["load_s"] = round(load_s, 3)
print(json.dumps(figures, sort_keys=True))
