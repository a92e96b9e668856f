"""The examples in bindings/python/examples run as a user runs them, each in its own process."""

import json
import subprocess
import sys

import numpy as np

import lightweight_decoder as ld
from conftest import EXAMPLES, SAMPLES, dequantize, load_sample, requires_encoder


def run_example(name, *args, cwd):
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_decode_file(tmp_path, bank):
    out = run_example("decode_file.py", SAMPLES / "ood.i8.npy", "--scale",
                      SAMPLES / "ood.scale.npy", "--limit", 7, "--jsonl", cwd=tmp_path)
    lines = [json.loads(line) for line in out.splitlines()]
    q, scale, _ = load_sample("ood")
    expected = bank.batch_decode(q[:7], scale=scale[:7])
    assert [line.pop("row") for line in lines] == list(range(7))
    assert lines == [d.to_dict() for d in expected]
    # float32 rows, as a user's own file holds them, and the table output
    np.save(tmp_path / "rows.npy", dequantize(q, scale)[:3])
    table = run_example("decode_file.py", tmp_path / "rows.npy", "--decoder", "hybrid",
                        cwd=tmp_path).splitlines()
    assert len(table) == 3 and table[0].startswith("0\t")


@requires_encoder
def test_sentence_transformers_model(tmp_path):
    out = run_example("sentence_transformers_model.py", "a domestic animal that barks",
                      cwd=tmp_path)
    assert "-> " in out and "round-trip cosine" in out


@requires_encoder
def test_own_bank(tmp_path):
    bank_dir = tmp_path / "my_bank"
    out = run_example("own_bank.py", "--out", bank_dir, cwd=tmp_path)
    assert ld.PhraseBankDecoder(bank_dir).manifest()["count"] == 8
    answers = [line.split("-> ", 1)[1] for line in out.splitlines() if "-> " in line]
    assert len(answers) == 4
    assert answers[1].startswith("'The package was delivered to the wrong address.'")
    assert answers[3].startswith("'The train to Berlin leaves from platform nine.'")
