"""Self-check of the fake CuPy's stream-capture emulation (see README.md, "Stream capture"): what a
real CUDA graph does and forbids, the emulation must do and forbid too, or the CudaGraphStep tests
run under it prove nothing.

    bash tools/fake_cupy/run.sh python tools/fake_cupy/capture_check.py
"""
import numpy as np

import cupy as cp


def expect_error(kind, fn, what):
    try:
        fn()
    except kind:
        return
    raise SystemExit(f"capture_check: {what} did not raise {kind.__name__}")


def main():
    stream = cp.cuda.Stream(non_blocking=True)
    w = cp.asarray(np.arange(4, dtype=np.float32))
    scale = 2.0

    # A capture executes nothing: w is the same after end_capture; each launch replays the
    # recording with the scalar baked in (2.0, not the later 100.0) and w read as it is then.
    with stream:
        stream.begin_capture()
        assert stream.is_capturing()
        tmp = w * scale  # a buffer made in the capture
        w += tmp
        graph = stream.end_capture()
    assert not stream.is_capturing()
    np.testing.assert_array_equal(w.get(), [0, 1, 2, 3])
    scale = 100.0
    graph.launch(stream)
    np.testing.assert_array_equal(w.get(), [0, 3, 6, 9])
    graph.launch(stream)
    np.testing.assert_array_equal(w.get(), [0, 9, 18, 27])

    # An element is a 0-d view: a kernel that reads it at run time sees later writes.
    buf = cp.asarray(np.array([1.0, 2.0], np.float32))
    view = buf[1]
    buf[1] = 5.0
    assert float(view) == 5.0

    # What a capture forbids. A host synchronisation or transfer is refused by CUDA, which also
    # invalidates the capture: is_capturing() then raises and end_capture() fails
    # (cudaErrorStreamCaptureInvalidated). CuPy refuses cuBLAS itself, before any CUDA call, and the
    # fake's refusals of random numbers and other streams are its own: those leave the capture valid.
    invalid = cp.cuda.runtime.CUDARuntimeError
    forbidden = [
        (cp.StreamCaptureError, lambda: float(w.sum()), "float() of a device value", True),
        (cp.StreamCaptureError, lambda: w.get(), "a device-to-host copy", True),
        (cp.StreamCaptureError, lambda: w.set(np.zeros(4, np.float32)), "a host-to-device copy", True),
        (cp.StreamCaptureError, lambda: cp.asarray(np.ones(2)), "cupy.asarray of host data", True),
        (cp.StreamCaptureError, lambda: stream.synchronize(), "Stream.synchronize", True),
        (cp.StreamCaptureError, lambda: cp.random.rand(3, dtype=np.float32), "random numbers", False),
        (NotImplementedError, lambda: cp.matmul(w[None], w[:, None]), "matmul (cuBLAS)", False),
        (NotImplementedError, lambda: w[None] @ w[:, None], "the @ operator (cuBLAS)", False),
    ]
    assert issubclass(cp.StreamCaptureError, invalid)  # what real CuPy raises for them
    for kind, fn, what, invalidates in forbidden:
        with stream:
            stream.begin_capture()
            try:
                expect_error(kind, fn, what)
                if invalidates:
                    expect_error(RuntimeError, stream.is_capturing, f"is_capturing() after {what}")
            finally:
                if invalidates:
                    expect_error(invalid, stream.end_capture, f"end_capture() after {what}")
                else:
                    stream.end_capture()
        assert not stream.is_capturing()
    with stream:
        stream.begin_capture()
        try:
            other = cp.cuda.Stream(non_blocking=True)
            with other:
                expect_error(cp.StreamCaptureError, lambda: w + 1, "work on another stream")
        finally:
            stream.end_capture()
    expect_error(NotImplementedError, cp.cuda.Graph, "a Graph made other than by end_capture")
    expect_error(RuntimeError, lambda: cp.cuda.Stream.null.begin_capture(), "capture on the legacy stream")
    print("capture_check: ok (replay, restore, 0-d views, and", len(forbidden) + 2, "forbidden operations)")


if __name__ == "__main__":
    main()
