#!/usr/bin/env python3
"""PyTorch reference for bench_train: one Hypencoder training step (Margin-MSE + in-batch CE,
backward, clipping, AdamW) of the PyTorch twin (tests/fixtures/hypencoder_twin.py) on the same
config, batch shape and thread count, with the authors' settings: dropout 0.1 (hidden and
attention), SDPA attention, HF BertModel with its pooler (computed, unused, as in the
reference), and on CUDA tf32 matmuls plus bf16 autocast for precision bf16 (HF Trainer
bf16=True, tf32=True). Prints 'torch_ms <best>' and, on CUDA, 'torch_peak_bytes <n>'.

usage: bench_train_torch.py layers hidden heads ffn qnet B n qlen dlen threads reps [device precision]"""
import contextlib
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import hypencoder_twin as tw  # noqa: E402


def main():
    layers, hidden, heads, ffn, qnet, B, n, qlen, dlen, threads, reps = map(int, sys.argv[1:12])
    device = sys.argv[12] if len(sys.argv) > 12 else "cpu"
    precision = sys.argv[13] if len(sys.argv) > 13 else "fp32"
    torch.set_num_threads(threads)
    # As our trainer does (train.flush_denormals): same footing (BENCH_KEEP_DENORMALS: neither).
    torch.set_flush_denormal(not os.environ.get("BENCH_KEEP_DENORMALS"))
    tf32 = device == "cuda" and precision in ("tf32", "bf16")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(0)
    cfg = tw.tiny_bert_config(vocab=30522, hidden=hidden, layers=layers, heads=heads, ffn=ffn, max_pos=512)
    cfg.hidden_dropout_prob = 0.1        # the authors' (bert-base-uncased's) dropout
    cfg.attention_probs_dropout_prob = 0.1
    cfg._attn_implementation = "sdpa"    # HF's default attention, as the authors ran it
    model = tw.HypencoderTwin(cfg, qnet).float()
    assert model.query_encoder.transformer.config._attn_implementation == "sdpa"
    assert model.query_encoder.transformer.pooler is not None
    with torch.no_grad():
        model.query_encoder.reference_init()
    model.to(device).train()
    params = [p for name, p in model.named_parameters() if not name.startswith("passage_encoder.")]
    opt = torch.optim.AdamW(params, lr=2e-5)
    q_ids = torch.randint(1, 30522, (B, qlen), device=device)
    q_mask = torch.ones(B, qlen, dtype=torch.long, device=device)
    d_ids = torch.randint(1, 30522, (B * n, dlen), device=device)
    d_mask = torch.ones(B * n, dlen, dtype=torch.long, device=device)
    teacher = torch.rand(B, n, device=device) * 10
    cast = (torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" and precision == "bf16"
            else contextlib.nullcontext())
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    best = 1e30
    for r in range(reps + 1):
        sync()
        t0 = time.perf_counter()
        with cast:
            loss = model.train_step(q_ids, q_mask, d_ids, d_mask, teacher)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sync()
        t = time.perf_counter() - t0
        if r > 0:
            best = min(best, t)
    print(f"torch_ms {best * 1e3:.1f}")
    if device == "cuda":
        print(f"torch_peak_bytes {torch.cuda.max_memory_allocated()}")


if __name__ == "__main__":
    main()
