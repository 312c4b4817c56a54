"""The GIL is released while training, Ctrl-C stops training with the model
whole, repeated calls do not leak."""

import os
import signal
import threading

import numpy as np
import pytest

import sparse_ae


def test_another_thread_runs_during_fit(tiny):
    _, (x_train, _), _ = tiny
    m = sparse_ae.Autoencoder.preset("deep")
    ticks = [0]
    stop = threading.Event()
    running = threading.Event()

    def spin():
        running.set()
        while not stop.is_set():
            ticks[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    running.wait()
    before = ticks[0]
    # Pure Python in the other thread needs the GIL: it advances only if
    # fit lets go of it.
    m.fit(x_train, epochs=8, batch_size=32, verbose=False)
    during = ticks[0] - before
    stop.set()
    t.join()
    assert during > 1000, during


def test_ctrl_c_stops_fit_between_steps(tiny):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach only the main thread")
    _, (x_train, _), _ = tiny
    m = sparse_ae.Autoencoder.preset("shallow", seed=2)
    before = m.state_dict()
    epochs = []

    def press_ctrl_c(epoch, logs):
        epochs.append(epoch)
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        m.fit(x_train, epochs=100_000, batch_size=32, verbose=False, callbacks=[press_ctrl_c])
    assert 2 <= len(epochs) < 100_000
    # The model holds the weights of a whole step: trained, finite, usable.
    after = m.state_dict()
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    assert all(np.isfinite(v).all() for v in after.values())
    assert np.isfinite(m.encode(x_train[:4])).all()
    # And it trains on afterwards.
    hist = m.fit(x_train, epochs=1, batch_size=32, verbose=False)
    assert hist["epoch"] == [1]


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status")


def test_no_leak_over_1000_calls(tiny):
    _, (x_train, _), _ = tiny
    m = sparse_ae.Autoencoder.preset("deep")
    one = x_train[:1]
    # float64 in Fortran order: each call makes a converted copy (200 kB).
    batch = np.asfortranarray(x_train[:64].reshape(64, -1) / 255.0)
    for _ in range(50):
        m.encode(one), m.reconstruct(batch)
    start = rss_mb()
    for _ in range(1000):
        m.encode(one)
        m.reconstruct(batch)
    grown = rss_mb() - start
    # 1000 leaked copies would be 400 MB.
    assert grown < 40, f"RSS grew by {grown:.1f} MB over 1000 calls"


def test_fit_is_not_starved_by_another_threads_calls():
    # A thread calling encode without pause kept a one-epoch fit waiting for
    # as long as it ran: each call held the model while it computed.
    x = np.random.default_rng(0).random((1000, 784), dtype=np.float32)
    m = sparse_ae.Autoencoder.preset("deep")
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            m.encode(x)

    r = threading.Thread(target=reader, daemon=True)
    r.start()
    done = []
    f = threading.Thread(
        target=lambda: done.append(m.fit(x[:200], epochs=1, batch_size=100, verbose=False)))
    f.start()
    f.join(60)
    stop.set()
    r.join(60)
    assert done, "fit did not finish while another thread encoded"


def test_a_fit_from_an_inputs_conversion_runs_and_a_second_fit_is_refused():
    x = np.random.default_rng(0).random((400, 784), dtype=np.float32)
    m = sparse_ae.Autoencoder.preset("shallow")

    # encode's input runs fit while it is converted: no deadlock.
    class Lazy:
        def __array__(self, dtype=None, copy=None):
            m.fit(x[:100], epochs=1, batch_size=50, verbose=False)
            return x[:10]

    out = []
    t = threading.Thread(target=lambda: out.append(m.encode(Lazy())), daemon=True)
    t.start()
    t.join(60)
    assert out and out[0].shape == (10, m.code_dim)

    # A fit whose input is still being converted already holds the model:
    # a second fit meanwhile is refused (both trained from the same
    # weights, and one's training was lost).
    entered, release = threading.Event(), threading.Event()

    class Slow:
        def __array__(self, dtype=None, copy=None):
            entered.set()
            release.wait(60)
            return x

    first = []
    a = threading.Thread(
        target=lambda: first.append(m.fit(Slow(), epochs=1, batch_size=100, verbose=False)))
    a.start()
    assert entered.wait(60)
    try:
        with pytest.raises(RuntimeError, match="being trained already"):
            m.fit(x, epochs=1, batch_size=100, verbose=False)
    finally:
        release.set()
    a.join(60)
    assert first
    m.fit(x, epochs=1, batch_size=100, verbose=False)


def test_a_callback_whose_on_epoch_end_cannot_be_called_is_refused_first():
    x = np.random.default_rng(0).random((100, 16), dtype=np.float32)
    m = sparse_ae.Autoencoder.preset("shallow", input=16)
    before = m.state_dict()

    class C:
        on_epoch_end = None

    with pytest.raises(TypeError, match=r"callbacks\[0\]"):
        m.fit(x, epochs=2, batch_size=50, callbacks=[C()], verbose=False)
    for k, v in before.items():
        np.testing.assert_array_equal(m.state_dict()[k], v, err_msg=k)


def test_two_threads_fit_two_models_at_once():
    # A fit's loop runs on a thread of the pool and takes the GIL for its
    # callbacks; a second thread's fit made its trainer (which waits for
    # every pool thread) holding the GIL: each waited for the other for
    # ever. Run in a subprocess, so that a hang is a timeout, not a hung
    # suite.
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import threading, time
        import numpy as np
        import sparse_ae
        x = np.random.default_rng(0).random((64, 16), dtype=np.float32)
        a = sparse_ae.Autoencoder.preset("shallow", input=16, seed=1)
        b = sparse_ae.Autoencoder.preset("shallow", input=16, seed=2)
        go = threading.Event()
        def other():
            go.wait()
            b.fit(x, epochs=2, batch_size=8, verbose=False)
        t = threading.Thread(target=other)
        t.start()
        def cb(epoch, logs):
            if epoch == 0:
                go.set()
                time.sleep(0.5)  # b's fit makes its trainer meanwhile
        a.fit(x, epochs=3, batch_size=8, callbacks=[cb], verbose=False)
        t.join()
        print("both fits ended")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "both fits ended" in out.stdout, out.stderr


def test_a_fit_starts_while_another_fits_callback_waits_for_it():
    # Making a trainer waited for every pool thread (each reserved its
    # packing buffers). One ran the first fit's loop, held by a callback
    # that waits for the second fit to reach its own first callback: the
    # second fit never started, the first's callback waited for ever. Two
    # pool threads: one for each fit's loop. In a subprocess, so that a hang
    # is a timeout, not a hung suite.
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import threading
        import numpy as np
        import sparse_ae
        x = np.random.default_rng(0).random((64, 16), dtype=np.float32)
        a = sparse_ae.Autoencoder.preset("shallow", input=16, seed=1)
        b = sparse_ae.Autoencoder.preset("shallow", input=16, seed=2)
        go, started = threading.Event(), threading.Event()
        seen = []
        def other():
            go.wait()
            b.fit(x, epochs=2, batch_size=8, callbacks=[lambda e, l: started.set()], verbose=False)
        t = threading.Thread(target=other)
        t.start()
        def cb(epoch, logs):
            if epoch == 0:
                go.set()
                seen.append(started.wait(30))
        a.fit(x, epochs=2, batch_size=8, callbacks=[cb], verbose=False)
        t.join()
        if seen == [True]:
            print("both fits ended")
        else:
            print("the second fit did not start while the first's callback waited")
        """
    )
    env = dict(os.environ, RAYON_NUM_THREADS="2")
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0 and "both fits ended" in out.stdout, (out.stdout, out.stderr)
