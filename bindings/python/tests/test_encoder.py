"""`MpnetEncoder` against sentence-transformers, and `decode_text` against `lwdec decode --text`.

Skipped when the encoder's weights are not installed (see `conftest.requires_encoder`).
"""

import json
import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

import lightweight_decoder as ld
from conftest import (ENCODER_DIR, REPO, SAMPLES, dequantize, f32_tree, load_sample,
                      requires_encoder, run_cli)
from test_cli_parity import assert_same

pytestmark = requires_encoder


@pytest.fixture(scope="module")
def encoder():
    return ld.MpnetEncoder()


@pytest.fixture(scope="module")
def parity_texts():
    lines = (SAMPLES / "encoder_parity.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def test_encode_matches_sentence_transformers(encoder, parity_texts):
    ours = py_embed(encoder, parity_texts)
    reference = np.load(SAMPLES / "encoder_parity.f32.npy")
    assert ours.dtype == np.float32 and ours.shape == reference.shape == (len(parity_texts), 768)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosine = (ours * reference).sum(1) / np.linalg.norm(reference, axis=1)
    print(f"encoder parity: {len(cosine)} texts, mean cosine {cosine.mean():.7f}, "
          f"min {cosine.min():.7f}")
    assert cosine.mean() >= 0.9999 and cosine.min() >= 0.999
    # rows do not depend on the batch they were embedded in (beyond float rounding)
    alone = encoder.encode(parity_texts[:3])
    assert np.allclose(alone, ours[:3], atol=1e-5)


def test_encoder_inputs_and_errors(encoder, tmp_path):
    assert encoder.dim == 768 and encoder.batch_size == 64 and encoder.max_seq_length == 384
    assert str(encoder.path) == str(ENCODER_DIR) and "MpnetEncoder(" in repr(encoder)
    empty = encoder.encode([])
    assert empty.shape == (0, 768) and empty.dtype == np.float32
    assert encoder.encode(("a tuple", "of texts")).shape == (2, 768)
    with pytest.raises(TypeError):
        encoder.encode("one string, not a list")
    with pytest.raises(TypeError):
        encoder.encode(["a text", 42])
    with pytest.raises(ValueError, match="batch_size"):
        ld.MpnetEncoder(batch_size=0)
    # the precision: auto is the fastest this CPU runs (bf16 with AVX512-BF16, else f32)
    assert encoder.precision in ("bf16", "f32") and encoder.precision in repr(encoder)
    with pytest.raises(ValueError, match="unknown encoder precision"):
        ld.MpnetEncoder(precision="fp16")
    reference = ld.MpnetEncoder(precision="f32")
    assert reference.precision == "f32"
    texts = ["A small boat on the lake.", "Never used at the same time as the callback."]
    cosines = (encoder.encode(texts) * reference.encode(texts)).sum(axis=1)
    assert cosines.min() > 0.999, cosines
    missing = tmp_path / "no-such-encoder"
    with pytest.raises(FileNotFoundError, match="no-such-encoder"):
        ld.MpnetEncoder(missing)
    # a folder whose weights are cut short: an OSError naming the folder
    broken = tmp_path / "broken-encoder"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "sentence_bert_config.json"):
        shutil.copy(ENCODER_DIR / name, broken / name)
    (broken / "model.safetensors").write_bytes(
        (ENCODER_DIR / "model.safetensors").open("rb").read(4096))
    with pytest.raises(OSError, match="broken-encoder"):
        ld.MpnetEncoder(broken)
    # $LWDEC_ENCODER_DIR is where MpnetEncoder() looks, as for lwdec
    old = os.environ.get("LWDEC_ENCODER_DIR")
    os.environ["LWDEC_ENCODER_DIR"] = str(missing)
    try:
        assert str(ld.MpnetEncoder.default_path()) == str(missing)
        with pytest.raises(FileNotFoundError, match="LWDEC_ENCODER_DIR"):
            ld.MpnetEncoder()
        with pytest.raises(FileNotFoundError, match="no-such-encoder"):
            ld.PhraseBankDecoder.default().decode_text(["a text"])
    finally:
        if old is None:
            del os.environ["LWDEC_ENCODER_DIR"]
        else:
            os.environ["LWDEC_ENCODER_DIR"] = old


def cli_decode_text(lwdec, tmp_path, texts, *flags):
    """`lwdec decode --text ...` as parsed JSON lines."""
    out = tmp_path / "decoded.jsonl"
    args = [f"--text={t}" for t in texts]
    subprocess.run([str(lwdec), "decode", *args, "--output", str(out), *flags], check=True,
                   cwd=REPO)
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


EMBEDDED = {}  # (who, texts) -> rows: each list is embedded once per run (slow on 2 cores)


def cli_embed(lwdec, tmp_path, texts):
    """`lwdec embed` of `texts` (one per line)."""
    key = ("lwdec", tuple(texts))
    if key not in EMBEDDED:
        phrases, out = tmp_path / "texts.txt", tmp_path / "texts.npy"
        phrases.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        subprocess.run([str(lwdec), "embed", "--phrases", str(phrases), "--out", str(out)],
                       check=True, cwd=REPO, capture_output=True)
        EMBEDDED[key] = np.load(out)
    return EMBEDDED[key]


def py_embed(encoder, texts):
    """`encoder.encode(texts)`, once per list."""
    key = ("python", tuple(texts))
    if key not in EMBEDDED:
        EMBEDDED[key] = encoder.encode(texts)
    return EMBEDDED[key]


def assert_same_as_cli(lwdec, tmp_path, encoder, results, lines, texts):
    """`decode_text`'s results equal `lwdec decode --text`'s lines, row for row, with the
    round-trip cosine: the one lwdec prints when it prints one, else the cosine of lwdec's own
    embeddings (`lwdec embed`) of the output and of the input."""
    assert len(results) == len(lines) == len(texts)
    for row, (d, line, text) in enumerate(zip(results, lines, texts)):
        assert line["input"] == text and line["row"] == row
        assert d.text == line["text"], f"row {row}"
        # both are f32: the CLI prints the shortest representation that reads back exactly
        assert np.float32(d.confidence) == np.float32(line["confidence"]), f"row {row}"
        assert d.roundtrip_cosine is not None, f"row {row}"
        expected = {k: v for k, v in line.items() if k not in ("row", "input")}
        expected.setdefault("roundtrip_cosine", d.roundtrip_cosine)
        assert f32_tree(d.to_dict()) == f32_tree(expected), f"row {row}"
    cosines = np.array([d.roundtrip_cosine for d in results], dtype=np.float32)
    if all("roundtrip_cosine" in line for line in lines):
        printed = np.array([line["roundtrip_cosine"] for line in lines], dtype=np.float32)
        assert np.array_equal(cosines, printed)
    else:
        inputs = cli_embed(lwdec, tmp_path, texts)
        outputs = cli_embed(lwdec, tmp_path, [line["text"] for line in lines])
        # lwdec's embeddings are MpnetEncoder's, bit for bit (the same batches of 64)
        assert np.array_equal(inputs, py_embed(encoder, texts))
        assert np.allclose((inputs * outputs).sum(1), cosines, rtol=0, atol=2e-6)
    return cosines


@pytest.mark.parametrize("kind", ["phrase-bank", "hybrid"])
def test_decode_text_matches_cli(lwdec, tmp_path, encoder, parity_texts, kind):
    decoder = {"phrase-bank": ld.PhraseBankDecoder.default,
               "hybrid": ld.HybridDecoder.default}[kind]()
    results = decoder.decode_text(parity_texts, encoder)
    lines = cli_decode_text(lwdec, tmp_path, parity_texts, "--decoder", kind)
    cosines = assert_same_as_cli(lwdec, tmp_path, encoder, results, lines, parity_texts)
    print(f"decode_text {kind}: {len(results)} rows equal to lwdec decode --text; "
          f"round-trip cosine mean {cosines.mean():.4f}, min {cosines.min():.4f}")


def test_decode_text_generative_and_sessions(lwdec, tmp_path, encoder, parity_texts):
    texts = parity_texts[:12]
    results = ld.GenerativeDecoder.bundled().decode_text(texts, encoder)
    lines = cli_decode_text(lwdec, tmp_path, texts, "--decoder", "generative")
    assert_same_as_cli(lwdec, tmp_path, encoder, results, lines, texts)
    assert all(d.source == "generative" for d in results)
    bank = ld.PhraseBankDecoder.default()
    grouped = bank.decode_text(texts, encoder, boundaries=[0, 5])
    lines = cli_decode_text(lwdec, tmp_path, texts, "--boundaries", "0,5")
    assert_same_as_cli(lwdec, tmp_path, encoder, grouped, lines, texts)
    # the default encoder (None) is MpnetEncoder(): the same results
    alone = bank.decode_text(texts[:3], encoder)
    assert [d.to_dict() for d in bank.decode_text(texts[:3])] == [d.to_dict() for d in alone]
    with pytest.raises(ValueError, match="boundar"):
        bank.decode_text(texts, encoder, boundaries=[0, 99])
    with pytest.raises(TypeError):
        bank.decode_text("a single string", encoder)


def test_verified_refined_hybrid_matches_cli(lwdec, tmp_path, encoder):
    """`HybridDecoder.default(verify=True, refine=True)` is `lwdec decode --decoder hybrid
    --verify --refine`, row for row; the config's `verify` section reaches both."""
    q, scale, _ = load_sample("ood")
    rows = dequantize(q, scale)[:16]
    cli = run_cli(lwdec, tmp_path, rows, "--decoder", "hybrid", "--verify", "--refine")
    refined = ld.HybridDecoder.default(verify=True, refine=True, encoder=encoder)
    results = refined.batch_decode(rows)
    assert_same(results, cli)
    assert any(d.source == "refined" for d in results), "the rows exercise refinement"
    assert all(d.roundtrip_cosine is not None for d in results)
    # verification alone, with the config's settings (a smaller pool, a smaller budget)
    config = {"verify": {"pool_top_k": 4, "refine": {"budget": 16}}}
    path = tmp_path / "verify.json"
    path.write_text(json.dumps(config))
    cli = run_cli(lwdec, tmp_path, rows[:8], "--decoder", "hybrid", "--config", str(path),
                  "--verify", "--refine")
    assert_same(ld.HybridDecoder.default(config=config, verify=True, refine=True)
                .batch_decode(rows[:8]), cli)
    cli = run_cli(lwdec, tmp_path, rows[:8], "--decoder", "phrase-bank", "--verify")
    assert_same(ld.PhraseBankDecoder.default(verify=True).batch_decode(rows[:8]), cli)
    # the statistics are the inner decoder's; refinement without verification is refused
    assert refined.statistics()["bank"]["decoded"] >= 16
    with pytest.raises(ValueError, match="verify=True"):
        ld.HybridDecoder.default(refine=True)
    with pytest.raises(ValueError, match="verify=True"):
        ld.PhraseBankDecoder.default(encoder=encoder)


def test_the_gil_is_released_while_encoding(encoder, parity_texts):
    span, ticks = {}, []

    def encode():
        span["start"] = time.perf_counter()
        encoder.encode(parity_texts[:48])
        span["end"] = time.perf_counter()

    worker = threading.Thread(target=encode)
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    worker.join()
    during = [t for t in ticks if span["start"] + 0.05 < t < span["end"] - 0.05]
    assert span["end"] - span["start"] > 0.2, "the encode is long enough to observe"
    # with the GIL held for the whole call, this thread could not run until it returned
    assert len(during) >= 20, f"{len(during)} ticks while encoding"
