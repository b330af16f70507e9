#!/usr/bin/env python3
"""PyTorch reference for bench_train: one Hypencoder training step (Margin-MSE + in-batch CE,
backward, AdamW) of the PyTorch twin (tests/fixtures/hypencoder_twin.py) on the same config,
batch shape and thread count. Prints 'torch_ms <best>'."""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import hypencoder_twin as tw  # noqa: E402


def main():
    layers, hidden, heads, ffn, qnet, B, n, qlen, dlen, threads, reps = map(int, sys.argv[1:12])
    torch.set_num_threads(threads)
    # As our trainer does (train.flush_denormals): same footing (BENCH_KEEP_DENORMALS: neither).
    torch.set_flush_denormal(not os.environ.get("BENCH_KEEP_DENORMALS"))
    torch.manual_seed(0)
    cfg = tw.tiny_bert_config(vocab=30522, hidden=hidden, layers=layers, heads=heads, ffn=ffn, max_pos=512)
    model = tw.HypencoderTwin(cfg, qnet).float()
    with torch.no_grad():
        model.query_encoder.reference_init()
    model.train()
    params = [p for name, p in model.named_parameters() if not name.startswith("passage_encoder.")]
    opt = torch.optim.AdamW(params, lr=2e-5)
    q_ids = torch.randint(1, 30522, (B, qlen))
    q_mask = torch.ones(B, qlen, dtype=torch.long)
    d_ids = torch.randint(1, 30522, (B * n, dlen))
    d_mask = torch.ones(B * n, dlen, dtype=torch.long)
    teacher = torch.rand(B, n) * 10
    best = 1e30
    for r in range(reps + 1):
        t0 = time.perf_counter()
        loss = model.train_step(q_ids, q_mask, d_ids, d_mask, teacher)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        t = time.perf_counter() - t0
        if r > 0:
            best = min(best, t)
    print(f"torch_ms {best * 1e3:.1f}")


if __name__ == "__main__":
    main()
