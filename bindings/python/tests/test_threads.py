"""One decoder shared by threads: the same results as one thread, with the GIL released."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import lightweight_decoder as ld
from conftest import dequantize, load_sample


def results(decoded):
    return [(d.text, d.confidence, d.source) for d in decoded]


def test_threads_get_the_results_of_one_thread(bank, hybrid):
    q, scale, _ = load_sample("ood")
    rows = dequantize(q, scale)
    for decoder in (bank, hybrid):
        alone = results(decoder.batch_decode(rows))
        singles = [(d.text, d.confidence, d.source) for d in map(decoder.decode, rows[:40])]
        with ThreadPoolExecutor(max_workers=4) as pool:
            batches = list(pool.map(lambda _: results(decoder.batch_decode(rows)), range(4)))
            one_by_one = list(pool.map(lambda r: decoder.decode(r), rows[:40]))
        assert all(b == alone for b in batches)
        assert results(one_by_one) == singles == alone[:40]


def test_the_gil_is_released_while_decoding():
    generator = ld.GenerativeDecoder.bundled(beam=4)
    q, scale, _ = load_sample("ood")
    rows = dequantize(q, scale)[:24]
    span = {}

    def decode():
        span["start"] = time.perf_counter()
        generator.batch_decode(rows)
        span["end"] = time.perf_counter()

    ticks = []
    worker = threading.Thread(target=decode)
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    worker.join()
    during = [t for t in ticks if span["start"] + 0.05 < t < span["end"] - 0.05]
    assert span["end"] - span["start"] > 0.2, "the decode is long enough to observe"
    # with the GIL held for the whole call, this thread could not run until it returned
    assert len(during) >= 20, f"{len(during)} ticks while decoding"
