#!/usr/bin/env python3
"""Reference half of bench/bench_tokenizer.c: HuggingFace `tokenizers` (Rust) BERT WordPiece,
single thread, on the texts the C benchmark wrote (a JSON array of strings).

    TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 python3 bench/bench_tokenizer_hf.py VOCAB TEXTS.json REPS

Prints one JSON line: {"ok": true, "tokens": N, "best_s": S, "version": V} (ok false + "error"
when tokenizers is missing).  encode_batch with parallelism off is HF's fastest one-thread path:
one call from Python, the loop in Rust."""
import json
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")


def main():
    vocab, path, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    try:
        import tokenizers
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    except ImportError as e:
        print(json.dumps({"ok": False, "error": f"tokenizers not importable: {e}"}))
        return
    with open(vocab, encoding="utf-8") as f:
        v = {t: i for i, t in enumerate(f.read().split("\n")[:-1])}
    tok = Tokenizer(models.WordPiece(v, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(("[SEP]", v["[SEP]"]), ("[CLS]", v["[CLS]"]))
    tok.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    with open(path, encoding="utf-8") as f:
        texts = json.load(f)
    tok.encode_batch(texts[:200])  # warm-up
    best, n = 1e30, 0
    for _ in range(reps):
        t0 = time.perf_counter()
        enc = tok.encode_batch(texts)
        dt = time.perf_counter() - t0
        best = min(best, dt)
        n = sum(len(e.ids) for e in enc)
    print(json.dumps({"ok": True, "tokens": n, "best_s": best, "version": tokenizers.__version__}))


if __name__ == "__main__":
    main()
