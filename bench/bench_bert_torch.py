#!/usr/bin/env python3
"""PyTorch reference for bench_bert: one BERT forward+backward step (sum of the last hidden
state as the loss) on the same config, batch and thread count. Prints 'torch_ms <best>'."""
import sys
import time

import torch
from transformers import BertConfig, BertModel


def main():
    layers, hidden, heads, ffn, batch, seq, threads, reps = map(int, sys.argv[1:9])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=ffn, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                     attn_implementation="eager")
    model = BertModel(cfg, add_pooling_layer=False)
    model.train()
    ids = torch.randint(1, 30522, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[batch // 2:, seq * 3 // 4:] = 0   # some padding, as in real batches
    best = 1e30
    for r in range(reps + 1):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        out.sum().backward()
        t = time.perf_counter() - t0
        if r > 0:
            best = min(best, t)
    print(f"torch_ms {best * 1e3:.1f}")


if __name__ == "__main__":
    main()
