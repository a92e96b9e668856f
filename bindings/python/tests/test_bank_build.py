"""`bank_build` from lists and arrays or from files, and loading what it wrote."""

import json

import numpy as np
import pytest

import lightweight_decoder as ld
from conftest import SAMPLES, dequantize, load_sample


def test_build_from_arrays_and_decode_back(tmp_path):
    q, scale, texts = load_sample("validation")
    rows = dequantize(q, scale)[:500]
    manifest = ld.bank_build(texts[:500], rows, tmp_path / "bank")
    assert manifest["count"] == 500 and manifest["index_spec"] == "Flat"
    assert json.loads((tmp_path / "bank" / "manifest.json").read_text()) == manifest
    decoder = ld.PhraseBankDecoder(tmp_path / "bank", config={"method": "greedy"})
    exact = sum(d.phrase_ids == [i] for i, d in enumerate(decoder.batch_decode(rows)))
    assert exact >= 499, f"{exact} of 500 decode to their own phrase"


def test_build_from_files_equals_build_from_arrays(tmp_path):
    q, scale, texts = load_sample("ood")
    from_files = ld.bank_build(SAMPLES / "ood.txt", SAMPLES / "ood.i8.npy", tmp_path / "a",
                               scale=SAMPLES / "ood.scale.npy")
    from_arrays = ld.bank_build(texts, q, tmp_path / "b", scale=scale)
    assert from_files["files"] == from_arrays["files"]


def test_build_refuses_bad_input(tmp_path):
    q, scale, texts = load_sample("ood")
    with pytest.raises(ValueError, match="200 phrases but 10 embedding rows"):
        ld.bank_build(texts, q[:10], tmp_path / "x", scale=scale[:10])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a phrase bank"):
        ld.bank_build(texts, q, tmp_path / "notes", scale=scale)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    with pytest.raises(TypeError, match="phrases must be"):
        ld.bank_build(42, q, tmp_path / "y", scale=scale)
    with pytest.raises(FileNotFoundError):
        ld.bank_build(texts, tmp_path / "absent.npy", tmp_path / "z")
    assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()
