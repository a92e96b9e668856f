"""The public names: documented, typed in the stubs, and behaving as the crate's."""

import ast
import inspect
from pathlib import Path

import numpy as np

import lightweight_decoder as ld
from conftest import dequantize, load_sample

STUBS = Path(ld.__file__).with_name("_native.pyi")


def public(obj):
    return [n for n in dir(obj) if not n.startswith("_")]


def test_every_public_name_has_a_docstring():
    assert ld.__doc__ and "PhraseBankDecoder.default()" in ld.__doc__
    for name in ld.__all__:
        obj = getattr(ld, name)
        if inspect.isclass(obj) or callable(obj):
            assert obj.__doc__, name
        if inspect.isclass(obj):
            for member in public(obj):
                assert getattr(obj, member).__doc__, f"{name}.{member}"


def test_stubs_describe_every_public_name():
    tree = ast.parse(STUBS.read_text())
    stubbed = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            stubbed[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        elif isinstance(node, ast.FunctionDef):
            stubbed[node.name] = set()
    inherited = stubbed.pop("_Decoder")
    for name in ld.__all__:
        if name in ("BUNDLED_DATA", "__version__"):
            continue
        assert name in stubbed, f"{name} missing from the stubs"
        obj = getattr(ld, name)
        if inspect.isclass(obj):
            members = stubbed[name] | (inherited if name.endswith("Decoder") else set())
            for member in public(obj):
                assert member in members, f"{name}.{member} missing from the stubs"


def test_sessions_equal_sequential_decoding(bank):
    q, scale, _ = load_sample("sessions_dev")
    rows = dequantize(q, scale)[:40]
    starts = [0, 4, 9, 20]
    window = ld.default_config()["context"]["window"]
    batched = bank.batch_decode_with_sessions(rows, starts)
    sequential = []
    for start, end in zip(starts, starts[1:] + [len(rows)]):
        session = bank.new_session()
        sequential += [bank.decode(rows[i], session=session) for i in range(start, end)]
        assert len(session) == min(end - start, window)
    assert [d.text for d in batched] == [d.text for d in sequential]
    assert [d.confidence for d in batched] == [d.confidence for d in sequential]


def test_statistics_and_health_are_dicts():
    decoder = ld.PhraseBankDecoder.default()
    q, scale, _ = load_sample("validation")
    decoder.batch_decode(q[:10], scale=scale[:10])
    stats = decoder.statistics()
    assert stats["decoded"] == 10 and stats["errors"] == 0
    assert 0.0 < stats["mean_confidence"] <= 1.0
    assert decoder.health() == {"status": "healthy", "reasons": []}
    hybrid = ld.HybridDecoder.default()
    hybrid.decode(dequantize(q[:1], scale[:1])[0])
    assert set(hybrid.statistics()) == {"bank", "generator"}
    assert hybrid.health()["status"] == "healthy"
    assert set(ld.default_config()) >= {"method", "top_k", "similarity_threshold", "hybrid"}


def test_results_read_as_python_values(bank):
    q, scale, texts = load_sample("validation")
    d = bank.decode(q[0], scale=float(scale[0]))
    assert isinstance(d.text, str) and isinstance(d.confidence, float)
    assert d.source == "phrase_bank" and d.phrase_ids == [d.candidates[0].phrase_id]
    assert d.candidates[0].similarity >= d.candidates[1].similarity
    assert "Decoded(text=" in repr(d) and "phrase_id=" in repr(d.candidates[0])
    assert isinstance(np.float32(d.confidence), np.float32)
