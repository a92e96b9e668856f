"""Array layouts and dtypes the decoders accept, and the exceptions bad input raises."""

import json
import shutil

import numpy as np
import pytest

import lightweight_decoder as ld
from conftest import REPO, dequantize, load_sample


@pytest.fixture(scope="module")
def rows():
    q, scale, texts = load_sample("validation")
    return q[:64], scale[:64], dequantize(q[:64], scale[:64]), texts[:64]


def texts_of(results):
    return [(d.text, d.confidence) for d in results]


def test_layouts_and_dtypes_agree(bank, rows):
    q, scale, f32, _ = rows
    expected = texts_of(bank.batch_decode(f32))
    assert texts_of(bank.batch_decode(np.asfortranarray(f32))) == expected
    padded = np.zeros((64, 1536), dtype=np.float32)
    padded[:, ::2] = f32
    assert texts_of(bank.batch_decode(padded[:, ::2])) == expected  # strided view
    assert texts_of(bank.batch_decode(f32.astype(np.float64))) == expected
    assert texts_of(bank.batch_decode(q, scale=scale)) == expected
    assert texts_of(bank.batch_decode(q, scale=scale.astype(np.float64))) == expected
    assert bank.decode(f32[3]).text == expected[3][0]
    assert bank.decode(q[3], scale=float(scale[3])).text == expected[3][0]
    assert bank.decode(f32[3].tolist()).text == expected[3][0]  # a list is read as float64


def test_in_bank_phrases_decode_to_themselves(bank, rows):
    _, _, f32, texts = rows
    exact = sum(d.text.lower() == t.lower() for d, t in zip(bank.batch_decode(f32), texts))
    assert exact >= 60, f"{exact} of 64 in-bank phrases recovered"


@pytest.mark.parametrize(
    "make, scale, error, message",
    [
        (lambda f: f[:, :100], None, ValueError, "dimension 100, expected 768"),
        (lambda f: f[0], None, ValueError, "2-D"),
        (lambda f: f[None], None, ValueError, "2-D"),
        (lambda f: np.where(np.arange(768) == 5, np.nan, f).astype(np.float32), None,
         ValueError, "non-finite"),
        (lambda f: np.zeros_like(f), None, ValueError, "zero vector"),
        (lambda f: f.astype(np.int64), None, TypeError, "dtype int64"),
        (lambda f: f.astype(np.float16), None, TypeError, "dtype float16"),
        (lambda f: (f * 100).astype(np.int8), None, ValueError, "need `scale`"),
        (lambda f: (f * 100).astype(np.int8), np.ones(3, np.float32), ValueError,
         "3 values for 64 rows"),
        (lambda f: (f * 100).astype(np.int8), np.full(64, np.inf, np.float32), ValueError,
         "non-finite"),
        (lambda f: f, np.ones(64, np.float32), ValueError, "only for int8"),
    ],
)
def test_bad_batches(bank, rows, make, scale, error, message):
    with pytest.raises(error, match=message):
        bank.batch_decode(make(rows[2]), scale=scale)


def test_bad_single_inputs(bank, rows):
    with pytest.raises(ValueError, match="1-D"):
        bank.decode(rows[2])
    with pytest.raises(ValueError, match="dimension 3"):
        bank.decode([1.0, 2.0, 3.0])


def test_bad_boundaries(bank, rows):
    f32 = rows[2]
    with pytest.raises(ValueError, match="strictly increasing"):
        bank.batch_decode_with_sessions(f32, [0, 5, 5])
    with pytest.raises(ValueError, match="out of range"):
        bank.batch_decode_with_sessions(f32, [0, 64])
    # negative or huge: a ValueError naming the position, not an OverflowError (issue 28)
    for bad in (-1, 2**70):
        with pytest.raises(ValueError, match=r"boundaries\[1\] is "):
            bank.batch_decode_with_sessions(f32, [0, bad])
    with pytest.raises(ValueError, match=r"boundaries\[0\]"):
        bank.batch_decode_with_sessions(f32, ["0"])


ROWS = 10**12


@pytest.mark.parametrize(
    "make, message",
    [
        # zero-stride views of 10^12 rows: refused by shape, never copied (issue 28)
        (lambda: np.lib.stride_tricks.as_strided(
            np.zeros(768, np.float32), shape=(ROWS, 768), strides=(0, 4)),
         "at most 16777216 rows"),
        (lambda: np.lib.stride_tricks.as_strided(
            np.zeros(768, np.float64), shape=(ROWS, 768), strides=(0, 8)),
         "at most 16777216 rows"),
        (lambda: np.broadcast_to(np.ones(768, np.float64), (ROWS, 768)),
         "at most 16777216 rows"),
        (lambda: np.lib.stride_tricks.as_strided(
            np.zeros(1, np.float64), shape=(2, ROWS), strides=(0, 0)),
         "dimension 1000000000000, expected 768"),
        (lambda: np.lib.stride_tricks.as_strided(
            np.zeros(1, np.int8), shape=(ROWS, 768), strides=(0, 0)),
         "at most 16777216 rows"),
    ],
)
def test_huge_views_are_refused_before_any_copy(bank, make, message):
    with pytest.raises(ValueError, match=message):
        bank.batch_decode(make())


def test_a_huge_single_view_is_refused(bank):
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.float64), shape=(ROWS,), strides=(0,))
    with pytest.raises(ValueError, match="dimension 1000000000000, expected 768"):
        bank.decode(huge)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"similarity_threshold": float("nan")},
         "config key `similarity_threshold`: NaN is not a finite number"),
        ({"cache": {"quantization_step": float("inf")}},
         "config key `cache.quantization_step`: inf is not a finite number"),
        ({"top_k": 2**80}, "config key `top_k`: .* is out of range"),
        ({"top_k": object()}, "config key `top_k`: a value of type object"),
        ({1: 2}, "is not a string"),
    ],
)
def test_config_dicts_name_the_bad_key(config, message):
    with pytest.raises(ValueError, match=message):
        ld.PhraseBankDecoder.default(config=config)


def test_files_and_settings(tmp_path):
    with pytest.raises(OSError, match="no phrase bank here"):
        ld.PhraseBankDecoder(tmp_path / "absent")
    with pytest.raises(FileNotFoundError):
        ld.GenerativeDecoder(model_path=tmp_path / "absent.gguf", guide=False)
    broken = tmp_path / "bank"
    shutil.copytree(ld.BUNDLED_DATA / "phrase_bank", broken)
    # phrases.txt (format 2) or phrases.txt.zst (format 3)
    phrases = next(broken.glob("phrases.txt*"))
    with open(phrases, "r+b") as f:
        f.truncate(1000)
    with pytest.raises(OSError, match=phrases.name.replace(".", r"\.")):
        ld.PhraseBankDecoder(broken)
    with pytest.raises(ValueError, match="did you mean `similarity_threshold`"):
        ld.PhraseBankDecoder.default(config={"similarity_treshold": 0.5})
    with pytest.raises(ValueError, match="beam must be in 1..=64"):
        ld.GenerativeDecoder.bundled(beam=0)
    with pytest.raises(TypeError, match="config must be"):
        ld.PhraseBankDecoder.default(config=42)
    config = tmp_path / "config.json"
    config.write_text('{"top_k": 3}')
    decoder = ld.PhraseBankDecoder.default(config=config)
    q, scale, _ = load_sample("ood")
    assert len(decoder.decode(q[0], scale=float(scale[0])).candidates) == 3
    assert ld.PhraseBankDecoder.default(config={"top_k": 2}).decode(
        q[0], scale=float(scale[0])).candidates[0].phrase_id is not None


def test_bundled_data_is_the_repository_bank(bank):
    installed = (ld.BUNDLED_DATA / "phrase_bank" / "manifest.json").read_text()
    assert installed == (REPO / "phrase_bank" / "manifest.json").read_text()
    stages = json.loads((REPO / "corpus" / "bank_stages.json").read_text())["stages"]
    assert bank.manifest()["count"] == stages[-1]["bank_phrases"] > 175_784
    assert (ld.BUNDLED_DATA / "generative.q4.gguf").read_bytes() == (
        REPO / "model" / "generative.q4.gguf").read_bytes()
