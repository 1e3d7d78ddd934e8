#!/usr/bin/env python3
"""The reference side of `allam bench`: the same three measurements with PyTorch eager and
`transformers.LlamaForCausalLM` (random weights, f32, 2 threads by default).

    python3 scripts/bench_pytorch.py train|decode|prefill|all [shape flags] [--steps N]

Prints one JSON object per measurement, with the keys `allam bench --json` prints
(`bench`, `tokens_per_s`, `peak_rss_mb`, shape and settings). Defaults match `allam bench`:

- train: hidden 512, 8 layers, 8 heads / 4 KV heads, FFN 1376, vocab 32000, untied, seq 256,
  batch 8; a full step (forward, backward, global clip 1.0, AdamW 0.9/0.95, wd 0.1); 1 untimed
  warm-up step, then --steps (3) timed steps; tokens/s = batch * seq * steps / seconds.
- decode: SmolLM2-135M shape (576, 30 layers, 9 / 3 heads, FFN 1536, vocab 49152, tied); a
  32-token prompt, then 128 greedy tokens with the KV cache (`generate`, no early stop);
  tokens/s = new tokens / seconds of the whole `generate` call.
- prefill: SmolLM2-135M shape, one 512-token forward pass (logits of every position).

If torch or transformers cannot be imported, a virtual environment is made at scripts/.venv
(CPU wheels of torch from download.pytorch.org, and transformers) and the script runs again from
it — only when PyPI answers within 5 seconds; otherwise it stops with a message. Where the CPU
index is unreachable, TORCH_FROM_PYPI=1 installs PyPI's torch (with its CUDA libraries, several GB).
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
VENV_PY = VENV / "bin" / "python"


def ensure_torch():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        return
    except ImportError:
        pass
    if Path(sys.executable).resolve() != VENV_PY.resolve() and VENV_PY.exists():
        probe = subprocess.run([str(VENV_PY), "-c", "import torch, transformers"], capture_output=True)
        if probe.returncode == 0:
            os.execv(str(VENV_PY), [str(VENV_PY), *sys.argv])
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=5)
    except Exception as e:  # no network: do not try to install
        sys.exit(f"torch/transformers missing and PyPI unreachable ({e}); install them or make {VENV}")
    print(f"installing torch (CPU) and transformers into {VENV} ...", file=sys.stderr)
    if not VENV_PY.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    pip = [str(VENV_PY), "-m", "pip", "install", "--quiet"]
    subprocess.check_call(pip + ["--upgrade", "pip"])
    try:
        subprocess.check_call(pip + ["torch", "--index-url", "https://download.pytorch.org/whl/cpu"])
    except subprocess.CalledProcessError:
        # PyPI's Linux torch wheel pulls the CUDA libraries (several GB): only when asked.
        if os.environ.get("TORCH_FROM_PYPI") != "1":
            sys.exit("could not install CPU torch from download.pytorch.org; set TORCH_FROM_PYPI=1 to "
                     "install PyPI's torch (with CUDA libraries, several GB) or install torch yourself")
        subprocess.check_call(pip + ["torch"])
    subprocess.check_call(pip + ["transformers"])
    os.execv(str(VENV_PY), [str(VENV_PY), *sys.argv])


# `--device`: cpu (default) or cuda; set in main().
DEVICE = "cpu"


def device_memory_reserved_mb():
    import torch

    if DEVICE.startswith("cuda"):
        return round(torch.cuda.max_memory_reserved() / 1048576, 1)
    return None


def peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


DEFAULTS = {
    "train": dict(hidden=512, layers=8, heads=8, kv_heads=4, ffn=1376, vocab=32000, tied=False, seq=256, batch=8),
    "decode": dict(hidden=576, layers=30, heads=9, kv_heads=3, ffn=1536, vocab=49152, tied=True, seq=None, batch=1),
    "prefill": dict(hidden=576, layers=30, heads=9, kv_heads=3, ffn=1536, vocab=49152, tied=True, seq=512, batch=1),
}


def shape_of(kind, args):
    s = dict(DEFAULTS[kind])
    for k in ("hidden", "layers", "heads", "kv_heads", "ffn", "vocab", "seq", "batch"):
        v = getattr(args, k)
        if v is not None:
            s[k] = v
    if args.tied is not None:
        s["tied"] = args.tied
    return s


def make_model(s, max_len):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=s["vocab"],
        hidden_size=s["hidden"],
        intermediate_size=s["ffn"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["kv_heads"],
        head_dim=s["hidden"] // s["heads"],
        max_position_embeddings=max(max_len, 4096),
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=s["tied"],
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
    )
    model = LlamaForCausalLM(config).to(torch.float32).to(DEVICE)
    return model


def shape_json(s, model):
    return {
        "hidden": s["hidden"], "layers": s["layers"], "heads": s["heads"], "kv_heads": s["kv_heads"],
        "head_dim": s["hidden"] // s["heads"], "ffn": s["ffn"], "vocab": s["vocab"], "tied": s["tied"],
        "params": sum(p.numel() for p in model.parameters()),
    }


def bench_train(s, args):
    import torch

    model = make_model(s, s["seq"])
    model.train()
    if args.checkpoint_layers:
        # transformers' activation checkpointing per decoder layer (allam's --checkpoint-layers).
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    decay = [p for n, p in model.named_parameters() if "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if "norm" in n]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-4, betas=(0.9, 0.95), eps=1e-8,
    )
    gen = torch.Generator().manual_seed(args.seed)

    def step():
        ids = torch.randint(0, s["vocab"], (s["batch"], s["seq"]), generator=gen).to(DEVICE)
        # --precision bf16-mixed: torch.autocast over f32 weights (allam's precision = "bf16-mixed").
        with torch.autocast(device_type=DEVICE.split(":")[0], dtype=torch.bfloat16,
                            enabled=args.precision == "bf16-mixed"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    warm = []
    for _ in range(args.warmup):
        t = time.perf_counter(); step(); warm.append(round(time.perf_counter() - t, 3))
    times, losses = [], []
    start = time.perf_counter()
    for _ in range(args.steps or 3):
        t = time.perf_counter(); losses.append(round(step(), 4)); times.append(round(time.perf_counter() - t, 3))
    seconds = time.perf_counter() - start
    tokens = s["batch"] * s["seq"] * len(times)
    return {"bench": "train", "tokens_per_s": round(tokens / seconds, 2), "tokens": tokens,
            "seconds": round(seconds, 3), "step_seconds": times, "warmup_seconds": warm, "loss": losses,
            "seq": s["seq"], "batch": s["batch"], "shape": shape_json(s, model)}


def bench_prefill(s, args):
    import torch

    model = make_model(s, s["seq"]).eval()
    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, s["vocab"], (s["batch"], s["seq"]), generator=gen).to(DEVICE)

    def run():
        with torch.inference_mode():
            model(input_ids=ids, use_cache=False).logits.sum().item()

    warm = []
    for _ in range(args.warmup):
        t = time.perf_counter(); run(); warm.append(round(time.perf_counter() - t, 3))
    times = []
    start = time.perf_counter()
    for _ in range(args.steps or 3):
        t = time.perf_counter(); run(); times.append(round(time.perf_counter() - t, 3))
    seconds = time.perf_counter() - start
    tokens = s["batch"] * s["seq"] * len(times)
    return {"bench": "prefill", "tokens_per_s": round(tokens / seconds, 2), "tokens": tokens,
            "seconds": round(seconds, 3), "step_seconds": times, "warmup_seconds": warm,
            "seq": s["seq"], "batch": s["batch"], "shape": shape_json(s, model)}


def bench_decode(s, args):
    import torch

    model = make_model(s, args.prompt_len + args.new_tokens).eval()
    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, s["vocab"], (s["batch"], args.prompt_len), generator=gen).to(DEVICE)
    mask = torch.ones_like(ids)

    def run(n):
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                                 do_sample=False, use_cache=True, pad_token_id=0)
        return (out.shape[1] - ids.shape[1]) * ids.shape[0]

    warm = []
    for _ in range(args.warmup):
        t = time.perf_counter(); run(min(8, args.new_tokens)); warm.append(round(time.perf_counter() - t, 3))
    times, generated = [], 0
    start = time.perf_counter()
    for _ in range(args.steps or 1):
        t = time.perf_counter(); generated += run(args.new_tokens); times.append(round(time.perf_counter() - t, 3))
    seconds = time.perf_counter() - start
    return {"bench": "decode", "tokens_per_s": round(generated / seconds, 2), "tokens": generated,
            "seconds": round(seconds, 3), "step_seconds": times, "warmup_seconds": warm,
            "prompt_len": args.prompt_len, "new_tokens": args.new_tokens, "batch": s["batch"],
            "shape": shape_json(s, model)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=["train", "decode", "prefill", "all", "check"],
                   help="`check`: only make sure torch and transformers import (installing them if needed)")
    for k in ("hidden", "layers", "heads", "kv-heads", "ffn", "vocab", "seq", "batch"):
        p.add_argument(f"--{k}", type=int)
    p.add_argument("--tied", type=lambda v: v.lower() in ("1", "true", "yes"), nargs="?", const=True)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--steps", type=int)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (timings include a sync per step)")
    p.add_argument("--precision", choices=["f32", "bf16-mixed"], default="f32",
                   help="train: bf16-mixed runs the step under torch.autocast(bfloat16)")
    p.add_argument("--checkpoint-layers", action="store_true",
                   help="train: gradient checkpointing per decoder layer")
    args = p.parse_args()
    ensure_torch()

    import torch
    import transformers

    if args.kind == "check":
        print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__}))
        return
    global DEVICE
    DEVICE = args.device
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    kinds = ["train", "decode", "prefill"] if args.kind == "all" else [args.kind]
    for kind in kinds:
        s = shape_of(kind, args)
        out = {"train": bench_train, "decode": bench_decode, "prefill": bench_prefill}[kind](s, args)
        out.update({"peak_rss_mb": peak_rss_mb(), "device_memory_reserved_mb": device_memory_reserved_mb(),
                    "device": DEVICE, "steps": len(out["step_seconds"]), "warmup": args.warmup,
                    "dtype": "f32", "precision": args.precision, "checkpoint_layers": args.checkpoint_layers,
                    "threads": args.threads, "seed": args.seed,
                    "torch": torch.__version__, "transformers": transformers.__version__})
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
