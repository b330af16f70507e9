// tokenizer.c: BERT WordPiece, exactly as HuggingFace tokenizers' BertNormalizer +
// BertPreTokenizer + WordPiece (see tokenizer.h for the pipeline and its quirks).
//
// One pass over the bytes: ASCII goes through a 256-entry class table; other code
// points are decoded, cleaned, decomposed (utf8proc), stripped of Mn and lowercased
// one at a time.  Normalized word characters collect in a fixed buffer (a word over
// 100 characters is [UNK], so 101 characters are all we ever keep); at a word
// boundary WordPiece runs on the buffer against an open-addressing hash table.
//
// Decomposing one code point at a time skips NFD's canonical reordering of adjacent
// combining marks.  Reordering only permutes marks with nonzero combining class; the
// nonspacing ones (Mn) are removed right after, so the result differs only in the
// order of spacing combining marks (Mc with ccc > 0, e.g. U+1D165).  No token of
// bert-base-uncased contains such a character (checked by
// tests/fixtures/make_tokenizer_fixtures.py), so a word holding one is [UNK] in any
// order and the ids are the same.
#include "data/tokenizer.h"
#include "autograd/util.h"
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#ifdef HYP_HAVE_UTF8PROC
#include <utf8proc.h>
enum { TOKC_PLAIN = 1, TOKC_PUNCT, TOKC_REMOVE };
#include "data/tokenizer_compat.h"
#define N_COMPAT ((int)(sizeof tok_compat / sizeof tok_compat[0]))
#endif

// ---------------------------------------------------------------- vocab hash table

#define FNV_PRIME 16777619u
#define SEED_WORD 2166136261u   // key of a token as written
#define SEED_CONT 0x9747b28cu   // key of a "##x" token without its "##"

typedef struct {
    uint32_t hash;
    int32_t code;    // 2*id + (1 if the key is the token minus "##"); -1 = empty slot
} Slot;

#define MAX_NEVER 16

struct Tokenizer {
    char *blob;          // tokens, each NUL-terminated, in id order
    uint32_t *off;       // (n + 1): token i is blob + off[i], length off[i+1] - off[i] - 1
    int n;
    Slot *slots;         // (mask + 1), load factor <= 1/2
    uint32_t mask;
    int max_key;         // longest key in bytes: bounds the WordPiece search
    int32_t special[TOK_NSPECIAL];
    bool lowercase;
    uint8_t cls[256];    // byte classes (see enum below), per tokenizer because of never-split
    int n_never;
    int32_t never_id[MAX_NEVER];
};

enum { C_WORD, C_UPPER, C_SPACE, C_PUNCT, C_REMOVE, C_MULTI, C_NEVER };

static inline uint32_t fnv_step(uint32_t h, uint8_t b) { return (h ^ b) * FNV_PRIME; }
static inline uint32_t hash_key(const char *s, size_t len, bool cont) {
    uint32_t h = cont ? SEED_CONT : SEED_WORD;
    for (size_t i = 0; i < len; i++) h = fnv_step(h, (uint8_t)s[i]);
    return h;
}

static inline int32_t tok_len(const Tokenizer *t, int32_t id) { return (int32_t)(t->off[id + 1] - t->off[id] - 1); }

static inline int32_t lookup(const Tokenizer *t, const char *key, int len, bool cont, uint32_t h) {
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        const Slot *s = &t->slots[i];
        if (s->code < 0) return -1;
        if (s->hash != h || (s->code & 1) != (int)cont) continue;
        int32_t id = s->code >> 1;
        const char *tk = t->blob + t->off[id];
        int tl = tok_len(t, id);
        if (cont) { tk += 2; tl -= 2; }
        if (tl == len && memcmp(tk, key, (size_t)len) == 0) return id;
    }
}

static void insert(Tokenizer *t, int32_t id, bool cont) {
    const char *tk = t->blob + t->off[id];
    int tl = tok_len(t, id);
    if (cont) { tk += 2; tl -= 2; }
    uint32_t h = hash_key(tk, (size_t)tl, cont);
    uint32_t i = h & t->mask;
    while (t->slots[i].code >= 0) i = (i + 1) & t->mask;
    t->slots[i].hash = h;
    t->slots[i].code = 2 * id + (cont ? 1 : 0);
    if (tl > t->max_key) t->max_key = tl;
}

int32_t tok_token_id(const Tokenizer *t, const char *token, size_t len) {
    if (len > (size_t)INT32_MAX) return -1;
    return lookup(t, token, (int)len, false, hash_key(token, len, false));
}

// ---------------------------------------------------------------- UTF-8

// Length of the well-formed UTF-8 sequence at s[0..n) (Unicode Table 3-7) and its code
// point, or 0 when s starts an ill-formed subsequence.
static inline int utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    if (c < 0xC2) return 0;
    if (c < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3) return 0;
        uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4) return 0;
        uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
              ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return 4;
    }
    return 0;
}

static inline int utf8_encode(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// ---------------------------------------------------------------- character classes

// ASCII punctuation as HF counts it: 33-47, 58-64, 91-96, 123-126.
static inline bool ascii_punct(uint32_t c) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

// Rust char::is_whitespace (Unicode White_Space) above ASCII.  U+0085 is also
// White_Space but, being Cc, cleaning removes it first.
static inline bool uni_space(uint32_t c) {
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// HF tokenizers' BertNormalizer::is_chinese_char (note 0x2B920, not 0x2B820).
static inline bool is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

#ifdef HYP_HAVE_UTF8PROC
// Index of the tok_compat range holding c, -1 if none.
static int compat_find(uint32_t c) {
    if (c < tok_compat[0].lo || c > tok_compat[N_COMPAT - 1].hi) return -1;
    int lo = 0, hi = N_COMPAT - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c < tok_compat[mid].lo) hi = mid - 1;
        else if (c > tok_compat[mid].hi) lo = mid + 1;
        else return mid;
    }
    return -1;
}

static inline bool uni_control(uint32_t c) {   // Cc Cf Cs Co (not Cn: unassigned stay)
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CS ||
           k == UTF8PROC_CATEGORY_CO;
}
static inline bool uni_punct(uint32_t c) {     // general category P*
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}
#else
// Without utf8proc only ASCII and Latin-1 are classified; see tok_load's warning.
static inline bool uni_control(uint32_t c) { return c < 0xA0 || c == 0xAD; }
static inline bool uni_punct(uint32_t c) {
    return c == 0xA1 || c == 0xA7 || c == 0xAB || c == 0xB6 || c == 0xB7 || c == 0xBB || c == 0xBF;
}
#endif

// ---------------------------------------------------------------- word state

#define WB_BYTES (4 * (TOK_MAX_WORD_CHARS + 1))

typedef struct {
    const Tokenizer *t;
    TokIds *out;
    int nch, nb;          // characters and bytes in wb
    bool overflow;        // more than TOK_MAX_WORD_CHARS characters
    uint16_t coff[TOK_MAX_WORD_CHARS + 2];   // byte offset of each character in wb
    char wb[WB_BYTES + 4];                   // the normalized word, UTF-8
} Word;

static inline void push_id(TokIds *o, int32_t id) {
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 256;
        o->ids = hyp_realloc(o->ids, o->cap * sizeof *o->ids);
    }
    o->ids[o->n++] = id;
}

static void wordpiece(Word *w) {
    const Tokenizer *t = w->t;
    TokIds *o = w->out;
    size_t base = o->n;
    int n = w->nch;
    w->coff[n] = (uint16_t)w->nb;
    uint32_t hs[TOK_MAX_WORD_CHARS + 2];
    int start = 0;
    while (start < n) {
        bool cont = start > 0;
        uint32_t h = cont ? SEED_CONT : SEED_WORD;
        int sb = w->coff[start], emax = start;
        for (int e = start + 1; e <= n; e++) {
            int eb = w->coff[e];
            if (eb - sb > t->max_key) break;
            for (int b = w->coff[e - 1]; b < eb; b++) h = fnv_step(h, (uint8_t)w->wb[b]);
            hs[e] = h;
            emax = e;
        }
        int32_t id = -1;
        int e = emax;
        for (; e > start; e--) {
            id = lookup(t, w->wb + sb, w->coff[e] - sb, cont, hs[e]);
            if (id >= 0) break;
        }
        if (id < 0) { o->n = base; push_id(o, t->special[TOK_UNK]); return; }
        push_id(o, id);
        start = e;
    }
}

static inline void flush(Word *w) {
    if (w->overflow) push_id(w->out, w->t->special[TOK_UNK]);
    else if (w->nch) wordpiece(w);
    w->nch = w->nb = 0;
    w->overflow = false;
}

static inline void append_cp(Word *w, uint32_t cp) {
    if (w->overflow) return;
    if (w->nch == TOK_MAX_WORD_CHARS) { w->overflow = true; return; }
    w->coff[w->nch++] = (uint16_t)w->nb;
    w->nb += utf8_encode(cp, w->wb + w->nb);
}

// A normalized character: split on whitespace, isolate punctuation (BertPreTokenizer).
static inline void pretok_cp(Word *w, uint32_t cp) {
    if (cp < 0x80) {
        if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C) { flush(w); return; }
        if (ascii_punct(cp)) { flush(w); append_cp(w, cp); flush(w); return; }
        append_cp(w, cp);
        return;
    }
    if (uni_space(cp)) { flush(w); return; }
    if (uni_punct(cp)) { flush(w); append_cp(w, cp); flush(w); return; }
    append_cp(w, cp);
}

// A non-ASCII code point of the input: clean, CJK, normalize, pre-tokenize.
static void process_cp(Word *w, uint32_t cp) {
#ifdef HYP_HAVE_UTF8PROC
    int k = compat_find(cp);   // HF's older Unicode tables (tokenizer_compat.h)
    if (k >= 0) {
        switch (tok_compat[k].cls) {
        case TOKC_REMOVE: return;
        case TOKC_PUNCT: flush(w); append_cp(w, cp); flush(w); return;
        default: append_cp(w, w->t->lowercase ? (uint32_t)((int32_t)cp + tok_compat[k].delta) : cp); return;
        }
    }
#endif
    if (cp == 0xFFFD || uni_control(cp)) return;
    if (uni_space(cp)) { flush(w); return; }
    bool cjk = is_cjk(cp);
    if (cjk) flush(w);
#ifdef HYP_HAVE_UTF8PROC
    if (w->t->lowercase) {
        utf8proc_int32_t d[32];
        int last = 0;
        utf8proc_ssize_t nd = utf8proc_decompose_char((utf8proc_int32_t)cp, d, 32, UTF8PROC_DECOMPOSE, &last);
        if (nd < 1 || nd > 32) { d[0] = (utf8proc_int32_t)cp; nd = 1; }
        for (utf8proc_ssize_t i = 0; i < nd; i++) {
            if (utf8proc_category(d[i]) == UTF8PROC_CATEGORY_MN) continue;
            pretok_cp(w, (uint32_t)utf8proc_tolower(d[i]));
        }
    } else {
        pretok_cp(w, cp);
    }
#else
    if (w->t->lowercase && cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) cp += 0x20;
    pretok_cp(w, cp);
#endif
    if (cjk) flush(w);
}

// Length of the never-split string starting at s (longest), 0 if none; id in *id.
static int match_never(const Tokenizer *t, const char *s, size_t n, int32_t *id) {
    int best = 0;
    for (int i = 0; i < t->n_never; i++) {
        int32_t tid = t->never_id[i];
        int l = tok_len(t, tid);
        if (l > best && (size_t)l <= n && memcmp(s, t->blob + t->off[tid], (size_t)l) == 0) {
            best = l;
            *id = tid;
        }
    }
    return best;
}

size_t tok_wordpieces(const Tokenizer *t, const char *text, size_t len, size_t stop_after, TokIds *out) {
    Word w;
    w.t = t;
    w.out = out;
    w.nch = w.nb = 0;
    w.overflow = false;
    const size_t n0 = out->n;
    const size_t limit = stop_after ? stop_after : (size_t)-1;
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        switch (t->cls[c]) {
        case C_WORD:
            if (w.nch < TOK_MAX_WORD_CHARS) { w.coff[w.nch++] = (uint16_t)w.nb; w.wb[w.nb++] = (char)c; }
            else w.overflow = true;
            i++;
            continue;
        case C_UPPER:
            if (w.nch < TOK_MAX_WORD_CHARS) { w.coff[w.nch++] = (uint16_t)w.nb; w.wb[w.nb++] = (char)(c | 0x20); }
            else w.overflow = true;
            i++;
            continue;
        case C_SPACE:
            flush(&w);
            i++;
            break;
        case C_PUNCT:
            flush(&w);
            append_cp(&w, c);
            flush(&w);
            i++;
            break;
        case C_REMOVE:
            i++;
            continue;
        case C_NEVER: {
            int32_t id = -1;
            int l = match_never(t, text + i, len - i, &id);
            if (l > 0) {
                flush(&w);
                push_id(out, id);
                i += (size_t)l;
                break;
            }
            // not a never-split string: the byte's ordinary class
            if (c >= 0x80) goto multi;
            if (ascii_punct(c)) { flush(&w); append_cp(&w, c); flush(&w); i++; break; }
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') { flush(&w); i++; break; }
            if (c < 0x20 || c == 0x7F) { i++; continue; }
            append_cp(&w, t->lowercase && c >= 'A' && c <= 'Z' ? (uint32_t)(c | 0x20) : c);
            i++;
            continue;
        }
        case C_MULTI:
        multi: {
            uint32_t cp;
            int k = utf8_decode(s + i, len - i, &cp);
            if (k == 0) { i++; continue; }   // ill-formed: U+FFFD, removed by cleaning
            i += (size_t)k;
            process_cp(&w, cp);
            break;
        }
        }
        if (out->n - n0 >= limit && w.nch == 0 && !w.overflow) return out->n - n0;
    }
    flush(&w);
    return out->n - n0;
}

size_t tok_encode(const Tokenizer *t, const char *text, size_t len, int max_len, TokIds *out) {
    HYP_CHECK(max_len == 0 || max_len >= 2, "tok_encode: max_len %d must be 0 or >= 2", max_len);
    out->n = 0;
    push_id(out, t->special[TOK_CLS]);
    size_t room = max_len ? (size_t)max_len - 2 : 0;
    if (max_len == 0 || room > 0) tok_wordpieces(t, text, len, room, out);
    if (max_len && out->n > (size_t)max_len - 1) out->n = (size_t)max_len - 1;
    push_id(out, t->special[TOK_SEP]);
    return out->n;
}

void tok_ids_free(TokIds *v) {
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

// HF tokenizers' longest_first for a pair of n1 and n2 pieces in `room` (see the header).
static void pair_truncation(size_t n1, size_t n2, size_t room, size_t *k1, size_t *k2) {
    if (n1 + n2 <= room) { *k1 = n1, *k2 = n2; return; }
    bool swap = n1 > n2;
    size_t s = swap ? n2 : n1, l = swap ? n1 : n2;
    size_t keep_l = s > room ? s : (s > room - s ? s : room - s);
    size_t keep_s = s;
    if (keep_s + keep_l > room) keep_s = room / 2, keep_l = keep_s + room % 2;
    if (keep_l > l) keep_l = l;
    if (keep_s > s) keep_s = s;
    *k1 = swap ? keep_l : keep_s;
    *k2 = swap ? keep_s : keep_l;
}

void tok_encode_batch(const Tokenizer *t, const char *const *texts, const size_t *lens, int n,
                      int max_len, TokBatch *out) {
    HYP_CHECK(n >= 0, "tok_encode_batch: n = %d", n);
    TokIds all = {0}, one = {0};
    size_t *start = hyp_malloc(((size_t)n + 1) * sizeof *start);
    size_t longest = 0;
    for (int i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(texts[i]);
        tok_encode(t, texts[i], len, max_len, &one);
        start[i] = all.n;
        for (size_t j = 0; j < one.n; j++) push_id(&all, one.ids[j]);
        if (one.n > longest) longest = one.n;
    }
    start[n] = all.n;
    size_t cells = (size_t)n * longest;
    if ((size_t)out->batch * (size_t)out->len < cells || !out->ids) {
        free(out->ids);
        free(out->mask);
        out->ids = hyp_malloc(cells * sizeof *out->ids);
        out->mask = hyp_malloc(cells * sizeof *out->mask);
    }
    out->batch = n;
    out->len = (int)longest;
    int32_t pad = t->special[TOK_PAD];
    for (int i = 0; i < n; i++) {
        size_t m = start[i + 1] - start[i];
        int32_t *row = out->ids + (size_t)i * longest, *mrow = out->mask + (size_t)i * longest;
        for (size_t j = 0; j < longest; j++) {
            row[j] = j < m ? all.ids[start[i] + j] : pad;
            mrow[j] = j < m;
        }
    }
    free(start);
    tok_ids_free(&all);
    tok_ids_free(&one);
}

void tok_encode_pair_batch(const Tokenizer *t, const char *const *a, const char *const *b, int n,
                           int max_len, TokBatch *out) {
    HYP_CHECK(n >= 0 && (max_len == 0 || max_len >= 4), "tok_encode_pair_batch: n = %d, max_len %d", n, max_len);
    // Whole texts are split (the truncation rule compares their full lengths), then cut.
    TokIds all = {0};
    size_t *off = hyp_malloc((2 * (size_t)n + 1) * sizeof *off);   // (2n + 1) piece offsets: a_i at 2i, b_i at 2i + 1
    size_t *keep = hyp_malloc((2 * (size_t)n + 1) * sizeof *keep); // (2n) pieces kept
    size_t room = max_len ? (size_t)max_len - 3 : 0, longest = 0;
    for (int i = 0; i < n; i++) {
        off[2 * i] = all.n;
        size_t na = tok_wordpieces(t, a[i], strlen(a[i]), 0, &all);
        off[2 * i + 1] = all.n;
        size_t nb = tok_wordpieces(t, b[i], strlen(b[i]), 0, &all);
        keep[2 * i] = na, keep[2 * i + 1] = nb;
        if (max_len) pair_truncation(na, nb, room, &keep[2 * i], &keep[2 * i + 1]);
        if (keep[2 * i] + keep[2 * i + 1] + 3 > longest) longest = keep[2 * i] + keep[2 * i + 1] + 3;
    }
    size_t cells = (size_t)n * longest;
    free(out->ids);
    free(out->mask);
    free(out->types);
    out->ids = hyp_malloc((cells ? cells : 1) * sizeof *out->ids);
    out->mask = hyp_malloc((cells ? cells : 1) * sizeof *out->mask);
    out->types = hyp_malloc((cells ? cells : 1) * sizeof *out->types);
    out->batch = n;
    out->len = (int)longest;
    for (int i = 0; i < n; i++) {
        int32_t *row = out->ids + (size_t)i * longest, *mrow = out->mask + (size_t)i * longest, *trow = out->types + (size_t)i * longest;
        size_t k = 0;
        row[k] = t->special[TOK_CLS], trow[k++] = 0;
        for (int part = 0; part < 2; part++) {
            for (size_t j = 0; j < keep[2 * i + part]; j++) row[k] = all.ids[off[2 * i + part] + j], trow[k++] = part;
            row[k] = t->special[TOK_SEP], trow[k++] = part;
        }
        for (size_t j = 0; j < longest; j++) mrow[j] = j < k;
        for (; k < longest; k++) row[k] = t->special[TOK_PAD], trow[k] = 0;
    }
    free(off);
    free(keep);
    tok_ids_free(&all);
}

void tok_batch_free(TokBatch *b) {
    free(b->ids);
    free(b->mask);
    free(b->types);
    b->ids = b->mask = b->types = NULL;
    b->batch = b->len = 0;
}

// ---------------------------------------------------------------- loading

static const char *const special_str[TOK_NSPECIAL] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

static void build_classes(Tokenizer *t) {
    for (int c = 0; c < 256; c++) {
        uint8_t k;
        if (c >= 0x80) k = C_MULTI;
        else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') k = C_SPACE;
        else if (c < 0x20 || c == 0x7F) k = C_REMOVE;   // Cc, including \v \f and NUL
        else if (ascii_punct((uint32_t)c)) k = C_PUNCT;
        else if (t->lowercase && c >= 'A' && c <= 'Z') k = C_UPPER;
        else k = C_WORD;
        t->cls[c] = k;
    }
    for (int i = 0; i < t->n_never; i++) t->cls[(uint8_t)t->blob[t->off[t->never_id[i]]]] = C_NEVER;
}

bool tok_set_never_split(Tokenizer *t, const char *const *tokens, int n) {
    if (n < 0 || n > MAX_NEVER) { hyp_set_error("tok_set_never_split: %d strings (at most %d)", n, MAX_NEVER); return false; }
    int32_t ids[MAX_NEVER];
    for (int i = 0; i < n; i++) {
        ids[i] = tok_token_id(t, tokens[i], strlen(tokens[i]));
        if (ids[i] < 0 || tokens[i][0] == 0) {
            hyp_set_error("never-split string '%s' is not a vocab token", tokens[i]);
            return false;
        }
    }
    t->n_never = n;
    memcpy(t->never_id, ids, (size_t)n * sizeof *ids);
    build_classes(t);
    return true;
}

Tokenizer *tok_from_vocab_text(const char *data, size_t len, const char *name, bool lowercase) {
    data = hyp_skip_bom(data, &len);   // a BOM would otherwise become part of token 0 ("[PAD]")
    if (len == 0) { hyp_set_error("%s: empty vocab file", name); return NULL; }
    if (len > TOK_MAX_VOCAB_BYTES) {
        hyp_set_error("%s: %zu bytes, larger than the %d MiB limit for a vocab", name, len, (int)(TOK_MAX_VOCAB_BYTES >> 20));
        return NULL;
    }
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += data[i] == '\n';
    if (data[len - 1] != '\n') lines++;
    if (lines >= (size_t)INT32_MAX / 2) { hyp_set_error("%s: too many lines (%zu)", name, lines); return NULL; }
    Tokenizer *t = hyp_calloc(1, sizeof *t);
    t->lowercase = lowercase;
    t->blob = hyp_malloc(len + 1 + lines);
    t->off = hyp_malloc((lines + 1) * sizeof *t->off);
    uint32_t cap = 16;
    while (cap < 4 * lines) cap <<= 1;   // tokens + "##" views at load <= 1/2
    t->mask = cap - 1;
    t->slots = hyp_malloc(cap * sizeof *t->slots);
    for (uint32_t i = 0; i < cap; i++) t->slots[i].code = -1;

    size_t pos = 0, bo = 0;
    int n = 0;
    while (pos < len) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - line) : len - pos;
        int lineno = n + 1;
        if (l == 0) { hyp_set_error("%s:%d: empty line (a token must not be empty)", name, lineno); goto fail; }
        if (l > 1000) { hyp_set_error("%s:%d: token of %zu bytes (too long)", name, lineno, l); goto fail; }
        for (size_t j = 0; j < l;) {
            uint32_t cp;
            int k = utf8_decode((const uint8_t *)line + j, l - j, &cp);
            if (k == 0) { hyp_set_error("%s:%d: invalid UTF-8 at byte %zu of the token", name, lineno, j + 1); goto fail; }
            if (cp == '\r') { hyp_set_error("%s:%d: CR in token (CRLF line ends? vocab files use LF)", name, lineno); goto fail; }
            if (cp < 0x20 || cp == 0x7F) { hyp_set_error("%s:%d: control character 0x%02X in token", name, lineno, cp); goto fail; }
            j += (size_t)k;
        }
        t->off[n] = (uint32_t)bo;
        memcpy(t->blob + bo, line, l);
        bo += l;
        t->blob[bo++] = 0;
        t->off[n + 1] = (uint32_t)bo;
        int32_t prev = tok_token_id(t, line, l);
        if (prev >= 0) {
            hyp_set_error("%s:%d: duplicate token '%.*s' (first on line %d)", name, lineno, (int)l, line, prev + 1);
            t->n = n;
            goto fail;
        }
        t->n = n + 1;
        insert(t, n, false);
        if (l > 2 && line[0] == '#' && line[1] == '#') insert(t, n, true);
        n++;
        pos += l + (nl ? 1 : 0);
    }
    for (int k = 0; k < TOK_NSPECIAL; k++) {
        t->special[k] = tok_token_id(t, special_str[k], strlen(special_str[k]));
        if (t->special[k] < 0 && k != TOK_MASK) {
            hyp_set_error("%s: vocab has no %s token", name, special_str[k]);
            goto fail;
        }
    }
    // HF's added special tokens: cut out of the raw text before normalization.
    for (int k = 0; k < TOK_NSPECIAL; k++)
        if (t->special[k] >= 0) t->never_id[t->n_never++] = t->special[k];
    build_classes(t);
#ifndef HYP_HAVE_UTF8PROC
    static bool warned;
    if (!warned && lowercase) {
        warned = true;
        fprintf(stderr, "hyp: warning: built without utf8proc: text beyond ASCII/Latin-1 is not "
                        "normalized as BERT does (install libutf8proc-dev and rebuild)\n");
    }
#endif
    return t;
fail:
    tok_free(t);
    return NULL;
}

Tokenizer *tok_load(const char *path, bool lowercase) {
    FILE *f = fopen(path, "rb");
    if (!f) { hyp_set_error("%s: cannot open vocab file: %s", path, strerror(errno)); return NULL; }
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > TOK_MAX_VOCAB_BYTES) {
        hyp_set_error("%s: %lld bytes, larger than the %d MiB limit for a vocab file (not a vocab?)", path,
                      (long long)sb.st_size, (int)(TOK_MAX_VOCAB_BYTES >> 20));
        fclose(f);
        return NULL;
    }
    // Streams of unknown size (pipes, devices) are read up to the limit; a NUL byte stops
    // at once (a vocab is text), so /dev/zero fails after one read instead of hanging.
    size_t cap = 1 << 18, n = 0;
    long lines = 0;
    char *buf = hyp_malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap > TOK_MAX_VOCAB_BYTES) {
                hyp_set_error("%s: larger than the %d MiB limit for a vocab file (not a vocab?)", path,
                              (int)(TOK_MAX_VOCAB_BYTES >> 20));
                goto fail;
            }
            buf = hyp_realloc(buf, (cap *= 2) + 1);
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        if (k == 0) break;
        const char *z = memchr(buf + n, 0, k);
        if (z) {
            for (const char *q = buf; q < z; q++) lines += *q == '\n';
            hyp_set_error("%s:%ld: NUL byte (a binary file, not a vocab?)", path, lines + 1);
            goto fail;
        }
        n += k;
    }
    if (ferror(f)) { hyp_set_error("%s: read error: %s", path, strerror(errno)); goto fail; }
    fclose(f);
    Tokenizer *t = tok_from_vocab_text(buf, n, path, lowercase);
    free(buf);
    return t;
fail:
    fclose(f);
    free(buf);
    return NULL;
}

int tok_lines(const Tokenizer *t, FILE *in, const char *name, FILE *out, const TokLinesOptions *o) {
    HypLines *r = hyp_lines_from_file(in, name, HYP_LINES_ALLOW_NUL);
    TokIds ids = {0};
    char *line;
    size_t len;
    int got, rc = 0;
    while ((got = hyp_lines_next(r, &line, &len)) > 0) {
        if (o->specials) tok_encode(t, line, len, o->max_len, &ids);
        else {
            ids.n = 0;
            tok_wordpieces(t, line, len, o->max_len ? (size_t)o->max_len : 0, &ids);
            if (o->max_len && ids.n > (size_t)o->max_len) ids.n = (size_t)o->max_len;
        }
        for (size_t j = 0; j < ids.n; j++) {
            if (j) putc(' ', out);
            if (o->tokens) fputs(tok_token_str(t, ids.ids[j]), out);
            else fprintf(out, "%d", ids.ids[j]);
        }
        if (putc('\n', out) == EOF) break;
    }
    if (got < 0) rc = -1;
    else if (fflush(out) != 0 || ferror(out)) {
        hyp_set_error("writing the output of %s failed: %s", name, strerror(errno));
        rc = -1;
    }
    hyp_lines_close(r);
    tok_ids_free(&ids);
    return rc;
}

void tok_free(Tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->off);
    free(t->slots);
    free(t);
}

int tok_vocab_size(const Tokenizer *t) { return t->n; }
bool tok_lowercase(const Tokenizer *t) { return t->lowercase; }
const char *tok_token_str(const Tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n ? t->blob + t->off[id] : NULL;
}
int32_t tok_special_id(const Tokenizer *t, TokSpecial which) {
    return which >= 0 && which < TOK_NSPECIAL ? t->special[which] : -1;
}
