#!/usr/bin/env python3
"""Reference fixtures for bf16-mixed precision and YaRN (issue 27), made with PyTorch + transformers.

    scripts/.venv/bin/python scripts/make_precision_fixtures.py yarn|autocast|all

Run from the repository root. `python3 scripts/bench_pytorch.py check` makes scripts/.venv (torch and
transformers; where download.pytorch.org is unreachable, `TORCH_FROM_PYPI=1` installs PyPI's torch).
The committed files were made with torch 2.15.0+cu132 (PyPI wheel, run on the CPU, capability
AVX512, 1 thread) and transformers 5.25.0; every file records the versions that made it.

`yarn` writes crates/allam-model/tests/fixtures/yarn_reference.json: a JSON list of cases

    {"name", "config": {"head_dim", "rope_theta", "max_position_embeddings", "rope_scaling"},
     "inv_freq": [head_dim/2 f32 values], "attention_factor": float,
     "rope_parameters": the dict after transformers standardized it,
     "correction_range": [low, high] (this script's copy of the formula, checked against inv_freq),
     "warnings": what transformers logged while reading the config,
     "versions": {...}}

`config.rope_scaling` is the dict as a config.json carries it; the config object is built from the
config.json dict by `LlamaConfig.from_dict` (what `from_pretrained` does) and `inv_freq` and
`attention_factor` are what `ROPE_INIT_FUNCTIONS["yarn"]` (`_compute_yarn_parameters`) returns for it.

`autocast` writes tests/fixtures/tiny-deep-autocast/: a 24-layer tiny Llama (`config.json`,
`generation_config.json` and f32 `model.safetensors` from `save_pretrained`), `reference.safetensors`
(input ids, and under `torch.autocast("cpu", torch.bfloat16)`: every decoder layer's output, the
final hidden states, logits, loss and every parameter's gradient, all F32; ids I64) and
`reference.json` (versions, settings, dtypes seen under autocast, an aten-level trace of the dtypes
of layer 0 and the head, and the errors against autocast of: plain f32, a bf16 residual stream, and
two equivalent autocast runs that only sum in another order). Rerunning it gives bitwise the same
tensors (one CPU thread); the safetensors header's metadata order may differ.
"""
import argparse
import copy
import json
import logging
import math
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
YARN_OUT = ROOT / "crates" / "allam-model" / "tests" / "fixtures" / "yarn_reference.json"
AUTOCAST_DIR = ROOT / "tests" / "fixtures" / "tiny-deep-autocast"


def versions():
    import torch
    import transformers

    v = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        import safetensors

        v["safetensors"] = safetensors.__version__
    except ImportError:
        pass
    return v


class Capture(logging.Handler):
    """Collects what transformers logs (warnings about the rope config)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


# ---------------------------------------------------------------------------------------------
# YaRN
# ---------------------------------------------------------------------------------------------

YARN_CASES = [
    # (name, max_position_embeddings, rope_scaling as in config.json)
    ("a_factor4_original64_max64", 64,
     {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}),
    ("b_factor4_no_original_max64", 64,
     {"rope_type": "yarn", "factor": 4.0}),
    ("c_factor8_original32_max256", 256,
     {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 32}),
    ("d_factor2_attention_factor0.9", 64,
     {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 32, "attention_factor": 0.9}),
    ("e_factor4_mscale1_mscale_all_dim0.5", 64,
     {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16,
      "mscale": 1.0, "mscale_all_dim": 0.5}),
    # A long original length puts both ends of the correction range inside the head (2.62, 4.42),
    # so the ramp has fractional values that truncation ([2, 5]) would change.
    ("f_factor4_no_truncate_beta16_2", 8192,
     {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048,
      "truncate": False, "beta_fast": 16, "beta_slow": 2}),
    ("g_factor4_original32_max64", 64,
     {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}),
    # Extra: the DeepSeek-V3 style key set with the default attention factor, larger original length.
    ("h_factor40_original4096_max163840_mscale1_1", 163840,
     {"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
      "mscale": 1.0, "mscale_all_dim": 1.0, "beta_fast": 32, "beta_slow": 1}),
]
HEAD_DIM = 16
ROPE_THETA = 10000.0


def yarn_replica(head_dim, base, max_pos, rp):
    """This script's line-by-line copy of `_compute_yarn_parameters` (checked against transformers)."""
    import torch

    dim = head_dim
    factor = rp["factor"]
    original = rp["original_max_position_embeddings"]
    if factor is None:
        factor = max_pos / original
    beta_fast = rp.get("beta_fast") or 32
    beta_slow = rp.get("beta_slow") or 1

    def corr_dim(rot):
        return (dim * math.log(original / (rot * 2 * math.pi))) / (2 * math.log(base))

    low, high = corr_dim(beta_fast), corr_dim(beta_slow)
    if rp.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    lo, hi = low, high
    if lo == hi:
        hi += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - lo) / (hi - lo), 0, 1)
    pos_freqs = base ** (torch.arange(0, dim, 2).to(dtype=torch.float) / dim)
    extra = 1 - ramp
    inv = (1.0 / (factor * pos_freqs)) * (1 - extra) + (1.0 / pos_freqs) * extra
    return inv, [low, high]


def make_yarn():
    import torch
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, _compute_yarn_parameters

    assert ROPE_INIT_FUNCTIONS["yarn"] is _compute_yarn_parameters
    cap = Capture()
    tlog = logging.getLogger("transformers")
    tlog.addHandler(cap)
    cases = []
    for name, max_pos, rope_scaling in YARN_CASES:
        config_json = {
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "hidden_size": HEAD_DIM * 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "head_dim": HEAD_DIM,
            "max_position_embeddings": max_pos,
            "rope_theta": ROPE_THETA,
            "rope_scaling": copy.deepcopy(rope_scaling),
        }
        cap.messages.clear()
        config = LlamaConfig.from_dict(copy.deepcopy(config_json))
        inv_freq, attention_factor = ROPE_INIT_FUNCTIONS["yarn"](config)
        assert inv_freq.dtype == torch.float32 and inv_freq.shape == (HEAD_DIM // 2,)
        rp = dict(config.rope_parameters)
        replica, corr = yarn_replica(HEAD_DIM, ROPE_THETA, max_pos, rp)
        assert torch.equal(replica, inv_freq), (name, replica, inv_freq)
        cases.append({
            "name": name,
            "config": {
                "head_dim": HEAD_DIM,
                "rope_theta": ROPE_THETA,
                "max_position_embeddings": max_pos,
                "rope_scaling": rope_scaling,
            },
            "inv_freq": [float(x) for x in inv_freq.tolist()],
            "attention_factor": float(attention_factor),
            "rope_parameters": rp,
            "correction_range": corr,
            "warnings": list(cap.messages),
            "versions": versions(),
        })
    tlog.removeHandler(cap)
    YARN_OUT.parent.mkdir(parents=True, exist_ok=True)
    YARN_OUT.write_text(json.dumps(cases, indent=1) + "\n")
    print(f"wrote {YARN_OUT.relative_to(ROOT)} ({len(cases)} cases)")
    for c in cases:
        print(f"  {c['name']}: attention_factor {c['attention_factor']!r} range {c['correction_range']}")


# ---------------------------------------------------------------------------------------------
# Autocast
# ---------------------------------------------------------------------------------------------

SEED = 27
MODEL = dict(
    vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=24,
    num_attention_heads=4, num_key_value_heads=2, head_dim=8, hidden_act="silu",
    max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
    tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
)
BATCH, SEQ = 2, 16


def build_model():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**MODEL)
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).to(torch.float32)
    with torch.no_grad():
        # In named_parameters() order, from one seeded stream.
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape))
            else:
                p.copy_(0.1 * torch.randn(p.shape))
    return model


def load_model(path, attn="eager"):
    import torch
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(path, attn_implementation=attn, dtype=torch.float32)
    model.train()  # dropout is 0; train mode as in a training step
    return model


def run(model, ids, mode):
    """One forward (with labels) and backward in `mode`; returns outputs, grads and dtypes seen."""
    import torch

    assert mode in ("autocast", "f32", "bf16_residual")
    model.zero_grad(set_to_none=True)
    handles = []
    dtypes = {"layers": [None] * len(model.model.layers)}
    captured = {}

    if mode == "bf16_residual":
        handles.append(model.model.embed_tokens.register_forward_hook(
            lambda m, i, o: o.to(torch.bfloat16)))
        for layer in model.model.layers:
            handles.append(layer.register_forward_hook(
                lambda m, i, o: (o.to(torch.bfloat16) if torch.is_tensor(o)
                                 else (o[0].to(torch.bfloat16),) + tuple(o[1:]))))

    # Recording hooks go after the casting ones, so they see the tensors the model goes on with.
    handles.append(model.model.embed_tokens.register_forward_hook(
        lambda m, i, o: dtypes.__setitem__("embedding_output", str(o.dtype))))
    layer_out = [None] * len(model.model.layers)
    for k, layer in enumerate(model.model.layers):
        def rec(m, i, o, k=k):
            t = o if torch.is_tensor(o) else o[0]
            dtypes["layers"][k] = str(t.dtype)
            layer_out[k] = t.detach().to(torch.float32).clone()
        handles.append(layer.register_forward_hook(rec))
    handles.append(model.model.rotary_emb.register_forward_hook(
        lambda m, i, o: dtypes.__setitem__("rotary_cos_sin", [str(o[0].dtype), str(o[1].dtype)])))

    def final_norm_hook(m, i, o):
        dtypes["final_norm_input"] = str(i[0].dtype)
        dtypes["final_norm_output"] = str(o.dtype)
        captured["hidden"] = o
    handles.append(model.model.norm.register_forward_hook(final_norm_hook))

    try:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=mode != "f32"):
            out = model(input_ids=ids, labels=ids, output_hidden_states=True, use_cache=False)
        # Backward outside the autocast context, as PyTorch recommends.
        out.loss.backward()
    finally:
        for h in handles:
            h.remove()
    hidden = captured["hidden"]
    assert torch.equal(out.hidden_states[-1], hidden), "hidden_states[-1] is not the final norm's output"
    dtypes["hidden_states_last"] = str(out.hidden_states[-1].dtype)
    dtypes["logits"] = str(out.logits.dtype)
    dtypes["loss"] = str(out.loss.dtype)
    grads = {n: p.grad.detach().to(torch.float32).clone() for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        dtypes.setdefault("grads", set()).add(str(p.grad.dtype))
    dtypes["grads"] = sorted(dtypes["grads"])
    return {
        "hidden": hidden.detach().to(torch.float32).clone(),
        "layers": layer_out,
        "logits": out.logits.detach().to(torch.float32).clone(),
        "loss": out.loss.detach().to(torch.float32).reshape(1).clone(),
        "grads": grads,
        "dtypes": dtypes,
    }


def err(a, b):
    """max |a-b| and ||a-b|| / ||b|| (f64 arithmetic)."""
    a, b = a.double(), b.double()
    d = a - b
    nb = b.norm().item()
    return {"max_abs": d.abs().max().item(),
            "rel_l2": d.norm().item() / nb if nb > 0 else (0.0 if d.norm().item() == 0 else math.inf)}


def compare(res, ref):
    import torch

    stats = {k: err(res[k], ref[k]) for k in ("hidden", "logits", "loss")}
    layers = [err(a, b) for a, b in zip(res["layers"], ref["layers"])]
    stats["layer_outputs_rel_l2"] = [e["rel_l2"] for e in layers]
    stats["layer_outputs_max_abs"] = [e["max_abs"] for e in layers]
    per = {n: err(res["grads"][n], ref["grads"][n]) for n in ref["grads"]}
    names = list(ref["grads"])
    a = torch.cat([res["grads"][n].reshape(-1) for n in names])
    b = torch.cat([ref["grads"][n].reshape(-1) for n in names])
    stats["grads_all"] = err(a, b)
    worst = max(per, key=lambda n: per[n]["rel_l2"])
    stats["grads_worst_rel_l2"] = {"name": worst, **per[worst]}
    worst_abs = max(per, key=lambda n: per[n]["max_abs"])
    stats["grads_worst_max_abs"] = {"name": worst_abs, **per[worst_abs]}
    stats["grads_per_parameter"] = per
    return stats


def permutation_plan(name, perm_h, perm_f):
    """[(dim, index)] that permutes parameter `name` for hidden permutation perm_h, FFN perm_f."""
    if name.endswith("norm.weight"):
        return [(0, perm_h)]
    if name.endswith(("embed_tokens.weight", "q_proj.weight", "k_proj.weight", "v_proj.weight",
                      "lm_head.weight")):
        return [(1, perm_h)]
    if name.endswith("o_proj.weight"):
        return [(0, perm_h)]
    if name.endswith(("gate_proj.weight", "up_proj.weight")):
        return [(0, perm_f), (1, perm_h)]
    if name.endswith("down_proj.weight"):
        return [(0, perm_h), (1, perm_f)]
    raise ValueError(name)


def run_permuted(model, ids):
    import torch

    g = torch.Generator().manual_seed(SEED + 1)
    perm_h = torch.randperm(MODEL["hidden_size"], generator=g)
    perm_f = torch.randperm(MODEL["intermediate_size"], generator=g)
    inv_h, inv_f = torch.argsort(perm_h), torch.argsort(perm_f)
    inverse = {id(perm_h): inv_h, id(perm_f): inv_f}

    def apply(t, plan, invert=False):
        for dim, idx in plan:
            t = t.index_select(dim, inverse[id(idx)] if invert else idx)
        return t

    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(apply(p.detach().clone(), permutation_plan(n, perm_h, perm_f)))
    res = run(model, ids, "autocast")
    res["hidden"] = res["hidden"].index_select(-1, inv_h)
    res["layers"] = [t.index_select(-1, inv_h) for t in res["layers"]]
    res["grads"] = {n: apply(gr, permutation_plan(n, perm_h, perm_f), invert=True)
                    for n, gr in res["grads"].items()}
    return res


def op_trace(model, ids):
    """Every aten op of decoder layer 0 and of the head under autocast, with its dtypes (one forward)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Trace(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []
            self.on = False

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if self.on:
                def dt(x):
                    if torch.is_tensor(x):
                        return str(x.dtype).replace("torch.", "")
                    if isinstance(x, (list, tuple)):
                        return [dt(y) for y in x if torch.is_tensor(y)]
                    return None
                ins = [d for d in (dt(x) for x in args) if d]
                self.ops.append(f"{func.__name__}({', '.join(map(str, ins))}) -> {dt(out)}")
            return out

    tr = Trace()
    hooks = []
    sections = {}

    def on(name):
        def pre(m, i):
            tr.on = True
            tr.ops.append(f"# {name}")
        return pre

    def off(m, i, o):
        tr.on = False

    for name, mod in [("embed_tokens", model.model.embed_tokens), ("rotary_emb", model.model.rotary_emb),
                      ("layers.0", model.model.layers[0]), ("norm", model.model.norm),
                      ("lm_head", model.lm_head)]:
        hooks.append(mod.register_forward_pre_hook(on(name)))
        hooks.append(mod.register_forward_hook(off))
    try:
        with tr:
            with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
                out = model(input_ids=ids, use_cache=False)
                tr.on = True
                tr.ops.append("# loss (ForCausalLMLoss, inside autocast)")
                model.loss_function(logits=out.logits, labels=ids, vocab_size=model.config.vocab_size)
                tr.on = False
    finally:
        for h in hooks:
            h.remove()
    return tr.ops


def make_autocast():
    import torch
    from safetensors.torch import save_file
    import transformers.models.llama.modeling_llama as ml

    torch.set_num_threads(1)  # one summation order for every reduction, run to run
    out = AUTOCAST_DIR
    out.mkdir(parents=True, exist_ok=True)
    build_model().save_pretrained(out)
    for p in out.iterdir():
        if p.name not in ("config.json", "generation_config.json", "model.safetensors",
                          "reference.json", "reference.safetensors"):
            raise SystemExit(f"unexpected file written by save_pretrained: {p}")

    gen = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, MODEL["vocab_size"], (BATCH, SEQ), generator=gen, dtype=torch.int64)

    results = {}
    for mode in ("autocast", "f32", "bf16_residual"):
        results[mode] = run(load_model(out), ids, mode)
    # Determinism: the same autocast run again gives the same bits.
    again = run(load_model(out), ids, "autocast")
    deterministic = all(torch.equal(again[k], results["autocast"][k]) for k in ("hidden", "logits", "loss")) and \
        all(torch.equal(again["grads"][n], results["autocast"]["grads"][n]) for n in again["grads"])

    # Sanity check: attention scores summed over head_dim in the reverse order (q and k flipped along
    # head_dim: the same dot products, another summation order), otherwise the same autocast run.
    original = ml.eager_attention_forward

    def flipped_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kw):
        return original(module, query.flip(-1), key.flip(-1), value, attention_mask, scaling, dropout, **kw)

    calls = []

    def counted(*a, **kw):
        calls.append(1)
        return flipped_attention(*a, **kw)

    ml.eager_attention_forward = counted
    try:
        flipped = run(load_model(out), ids, "autocast")
    finally:
        ml.eager_attention_forward = original
    assert len(calls) == MODEL["num_hidden_layers"], "the flipped attention was not called"

    # Second sanity check: the same network with its hidden (32) and FFN (64) units permuted, an exactly
    # equivalent model in which every reduction over hidden or FFN units (the projections' sums,
    # RMSNorm's mean, their backward sums) runs in another order; results are permuted back.
    permuted = run_permuted(load_model(out), ids)

    ref = results["autocast"]
    tensors = {"input_ids": ids.contiguous(),
               "autocast.hidden": ref["hidden"].contiguous(),
               "autocast.logits": ref["logits"].contiguous(),
               "autocast.loss": ref["loss"].contiguous()}
    for k, t in enumerate(ref["layers"]):
        tensors[f"autocast.layer.{k}.output"] = t.contiguous()
    for n, g in ref["grads"].items():
        tensors[f"autocast.grad.{n}"] = g.contiguous()
    save_file(tensors, str(out / "reference.safetensors"), metadata={
        "format": "pt", "torch": torch.__version__, "transformers": versions()["transformers"],
        "made_by": "scripts/make_precision_fixtures.py autocast"})

    model = load_model(out)
    trace = op_trace(model, ids)

    def summary(s):
        return {k: v for k, v in s.items() if k != "grads_per_parameter"}

    stats = {
        "f32_vs_autocast": compare(results["f32"], ref),
        "bf16_residual_vs_autocast": compare(results["bf16_residual"], ref),
        "autocast_flipped_scores_vs_autocast": compare(flipped, ref),
        "autocast_permuted_units_vs_autocast": compare(permuted, ref),
    }
    report = {
        "made_by": "scripts/make_precision_fixtures.py autocast",
        "versions": versions(),
        "seed": SEED,
        "model": MODEL,
        "init": "torch.manual_seed(seed); in named_parameters() order: *norm.weight = 1 + 0.1*randn, "
                "every other weight = 0.1*randn",
        "input": {"batch": BATCH, "seq": SEQ, "ids": "torch.randint(0, 128, (2, 16)) from "
                  "torch.Generator().manual_seed(seed)", "labels": "input_ids", "padding": False,
                  "loss": "mean cross entropy over the 2x15 shifted targets on logits.float()"},
        "run": {"attn_implementation": "eager", "train_mode": True, "torch_threads": 1,
                "autocast": 'torch.autocast(device_type="cpu", dtype=torch.bfloat16) around '
                            "model(input_ids, labels=input_ids); loss.backward() outside the context",
                "f32": "the same without autocast",
                "bf16_residual": "autocast, plus forward hooks casting embed_tokens' output and every "
                                 "decoder layer's output to bf16 (so RoPE cos/sin and the causal mask "
                                 "are bf16 too)",
                "autocast_flipped_scores": "autocast with eager_attention_forward given query.flip(-1) "
                                           "and key.flip(-1): the same scores summed over head_dim in "
                                           "reverse order",
                "autocast_permuted_units": "autocast on the equivalent network whose 32 hidden units "
                                           "and 64 FFN units are permuted (torch.randperm from "
                                           "Generator().manual_seed(seed + 1)); hidden and gradients "
                                           "permuted back: every reduction over those units sums in "
                                           "another order"},
        "reference_safetensors": {
            "input_ids": "I64 [2,16]",
            "autocast.hidden": "F32 [2,16,32] final hidden states after model.norm (= hidden_states[-1])",
            "autocast.logits": "F32 [2,16,128] (bf16 under autocast, stored upcast exactly)",
            "autocast.loss": "F32 [1]",
            "autocast.layer.<k>.output": "F32 [2,16,32], k = 0..23: decoder layer k's output hidden "
                                         "states (f32 under autocast), before the final norm",
            "autocast.grad.<name>": "F32, shape of the parameter ([out, in] for linear weights), "
                                    "for every name in model.named_parameters()",
        },
        "deterministic_rerun": deterministic,
        "deterministic_rerun_means": "a second autocast run from the reloaded weights gave bitwise "
                                     "equal hidden, logits, loss and gradients",
        "dtypes": {mode: r["dtypes"] for mode, r in results.items()},
        "loss": {mode: r["loss"].item() for mode, r in results.items()},
        "errors": {k: summary(v) for k, v in stats.items()},
        "errors_per_parameter": {k: v["grads_per_parameter"] for k, v in stats.items()},
        "op_trace_autocast": trace,
    }
    (out / "reference.json").write_text(json.dumps(report, indent=1) + "\n")
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {out.relative_to(ROOT)} ({size / 1e6:.2f} MB)")
    print(json.dumps({"loss": report["loss"], "deterministic": deterministic,
                      "errors": report["errors"]}, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["yarn", "autocast", "all"])
    args = ap.parse_args()
    if args.what in ("yarn", "all"):
        make_yarn()
    if args.what in ("autocast", "all"):
        make_autocast()


if __name__ == "__main__":
    main()
