// tokenizer.h: BERT WordPiece tokenizer, id-for-id identical to HuggingFace's
// BertTokenizerFast (the `tokenizers` BertNormalizer + BertPreTokenizer + WordPiece
// pipeline) for uncased vocabularies such as bert-base-uncased.
//
// Pipeline (lowercase = true, as HF do_lower_case=True with strip_accents=None):
//   0. Special tokens written in the text ("[MASK]", "[CLS]", ... exactly, case
//      sensitive, anywhere, even inside a word: "x[MASK]y" -> x [MASK] y) are cut out
//      of the raw text first and map to their ids, as HF does for its added special
//      tokens (AddedToken normalized=False).  tok_set_never_split() changes the list.
//   1. Cleaning: NUL, U+FFFD and "control" characters (general category Cc, Cf, Co;
//      \t \n \r excepted; unassigned code points stay, as in HF) are removed;
//      whitespace (\t \n \r and the Unicode White_Space characters that are not Cc)
//      becomes a space.  So \v, \f, U+0085, zero-width space U+200B, BOM and soft
//      hyphen U+00AD vanish without splitting a word.
//   2. CJK ideographs (U+4E00-9FFF, 3400-4DBF, 20000-2A6DF, 2A700-2B73F, 2B740-2B81F,
//      2B920-2CEAF, F900-FAFF, 2F800-2FA1F) become words of their own.  The range
//      2B920-2CEAF is HF tokenizers' (the Python BertTokenizer has 2B820-2CEAF).
//   3. Canonical decomposition (NFD), removal of nonspacing marks (Mn), then per
//      character lowercasing (no final-sigma rule: "ΟΔΟΣ" -> "οδοσ", as tokenizers;
//      the Python BertTokenizer gives "οδος").
//   4. Split on whitespace; every punctuation character (Unicode P* or ASCII
//      33-47, 58-64, 91-96, 123-126) is a word of its own.  The split is made on the
//      normalized text, so "a≠b" -> "a=b" (≠ decomposes to = + U+0338) -> a = b.
//   5. WordPiece: greedy longest-match-first with "##" continuations; a word longer
//      than 100 characters (code points, after normalization) or with a part not in
//      the vocab becomes a single [UNK].
//
// Invalid UTF-8: the text is decoded as Python's bytes.decode("utf-8", "replace")
// does (every maximal ill-formed subsequence -> U+FFFD; overlong forms, encoded
// surrogates and values above U+10FFFF are ill-formed), and step 1 removes U+FFFD.
// So invalid bytes disappear without splitting the word around them:
// "ab\xffcd" tokenizes as "abcd".  This equals HF on text decoded with
// errors="replace".  A NUL byte is a character like any other (removed in step 1):
// every function takes an explicit length.
//
// Unicode data: categories, NFD and lowercase come from utf8proc (Unicode 15.0 in
// utf8proc 2.8).  HF classifies with older tables (from before Unicode 11); the 624
// code points where that matters (characters assigned or recategorized since, e.g.
// U+0890 ARABIC POUND MARK ABOVE is plain to HF) are in data/tokenizer_compat.h,
// generated from HF and checked over every code point by tests/test_tokenizer.c.
//
// lowercase = false (cased vocabularies) skips step 3 entirely, as HF does.
//
// Special tokens are looked up by their strings in the vocab: [UNK], [CLS], [SEP]
// and [PAD] must be present, [MASK] is optional.  Nothing is hard-coded by id.
//
// A Tokenizer is immutable after loading: every function below may be called from
// several threads at once.  The encode functions allocate nothing per token; they
// grow only the caller's TokIds.
#ifndef HYP_TOKENIZER_H
#define HYP_TOKENIZER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TOK_MAX_WORD_CHARS 100   // HF max_input_chars_per_word
#define TOK_MAX_VOCAB_BYTES ((size_t)64 << 20)   // a vocab file larger than this is refused

typedef struct Tokenizer Tokenizer;

// Load vocab.txt: one token per line, id = 0-based line number, LF line ends (a final
// line without LF is accepted), a leading UTF-8 BOM dropped.  NULL on error with
// hyp_last_error() naming the file and line ("vocab.txt:7: duplicate token 'the' (first
// on line 3)"): empty file, a file over TOK_MAX_VOCAB_BYTES (64 MiB; bert-base's is
// 232 kB) or with a NUL byte (both found before reading further, so /dev/zero fails at
// once), empty line, CR in a line, control characters or invalid UTF-8 in a token,
// duplicate token, missing [UNK]/[CLS]/[SEP]/[PAD], unreadable file.
Tokenizer *tok_load(const char *vocab_path, bool lowercase);
// The same from the text of a vocab file in memory; name is used in messages
// (e.g. "model.h5:/tokenizer/vocab").
Tokenizer *tok_from_vocab_text(const char *data, size_t len, const char *name, bool lowercase);
void tok_free(Tokenizer *t);

int tok_vocab_size(const Tokenizer *t);
bool tok_lowercase(const Tokenizer *t);
// Id of a token string (exact bytes), -1 when absent.
int32_t tok_token_id(const Tokenizer *t, const char *token, size_t len);
// Token string of an id (NUL-terminated, owned by the tokenizer); NULL if out of range.
const char *tok_token_str(const Tokenizer *t, int32_t id);

typedef enum { TOK_PAD, TOK_UNK, TOK_CLS, TOK_SEP, TOK_MASK, TOK_NSPECIAL } TokSpecial;
// Id of a special token, -1 when the vocab lacks it (only [MASK] may be absent).
int32_t tok_special_id(const Tokenizer *t, TokSpecial which);

// Replace the strings cut out of the raw text in step 0 (default: those of [PAD],
// [UNK], [CLS], [SEP], [MASK] present in the vocab).  Each must be a vocab token.
// n = 0 splits special-token strings like any text ("[MASK]" -> [ mask ]), as
// HF's split_special_tokens=True.  Returns false (hyp_last_error) if a string is not
// in the vocab.  Not thread-safe against concurrent encoding with the same tokenizer.
bool tok_set_never_split(Tokenizer *t, const char *const *tokens, int n);

// Growable id buffer owned by the caller; reuse it across calls to avoid allocation.
typedef struct {
    int32_t *ids;
    size_t n, cap;
} TokIds;
void tok_ids_free(TokIds *v);

// Append the WordPiece ids of text[0..len) (no [CLS]/[SEP]) to out; stop after the
// word that brings out->n to at least stop_after new ids (stop_after = 0: no limit).
// Returns the number of ids appended (may exceed stop_after by the last word's pieces).
size_t tok_wordpieces(const Tokenizer *t, const char *text, size_t len, size_t stop_after, TokIds *out);

// out = [CLS] wordpieces [SEP], truncated to max_len ids including both specials
// (HF truncation=True, max_length=max_len); max_len = 0: no truncation, else >= 2.
// Replaces out's contents; returns out->n.
size_t tok_encode(const Tokenizer *t, const char *text, size_t len, int max_len, TokIds *out);

// A padded batch: ids and attention mask, both (batch, len) row-major int32.
typedef struct {
    int32_t *ids;   // (batch, len): [CLS] pieces [SEP] then [PAD]
    int32_t *mask;  // (batch, len): 1 for real tokens, 0 for padding
    int32_t *types; // (batch, len): token types of tok_encode_pair_batch (0 first text, 1 second; pads 0), else NULL
    int batch, len; // len = longest encoded text in the batch (HF padding="longest")
} TokBatch;
// Encode n texts (lens[i] bytes each; lens NULL: NUL-terminated) with truncation to
// max_len (0: none) and padding to the longest.  Replaces out's contents (buffers
// are reused when large enough).
void tok_encode_batch(const Tokenizer *t, const char *const *texts, const size_t *lens, int n,
                      int max_len, TokBatch *out);
// Sentence pairs as BERT reads them (a cross-encoder): [CLS] a [SEP] b [SEP], types 0 for
// [CLS] a [SEP] and 1 for b [SEP], padded to the longest pair. With max_len (>= 4; 0: none)
// the pair is cut to fit as HF's truncation="longest_first" does: with room R = max_len - 3
// and the shorter text's n1 pieces, the longer keeps max(n1, R - n1); when that still does
// not fit, the shorter keeps R/2 and the longer R - R/2 (on a tie in length the second
// text is the longer).
void tok_encode_pair_batch(const Tokenizer *t, const char *const *a, const char *const *b, int n,
                           int max_len, TokBatch *out);
void tok_batch_free(TokBatch *b);

// The `hyp tokenize` loop, in the library so the command stays thin: every line of `in`
// becomes one line of `out`, its space-separated ids (or token strings).  Lines end at LF
// (a CR stays in the text, where it is whitespace); they are read through hyp_lines
// (autograd/util.h), so a leading UTF-8 BOM is dropped and a line over 16 MiB is an error
// naming `name` and the line: `tokenize < /dev/zero` fails after 16 MiB instead of
// growing without limit.  NUL bytes are characters (removed by step 1).
typedef struct {
    int max_len;      // 0: no truncation; else >= 2, counting [CLS]/[SEP] when specials
    bool specials;    // wrap in [CLS] ... [SEP]
    bool tokens;      // print the wordpiece strings instead of ids
} TokLinesOptions;
// 0, or -1 with hyp_last_error() (a bad input line, a read or write error).
int tok_lines(const Tokenizer *t, FILE *in, const char *name, FILE *out, const TokLinesOptions *o);

#endif
