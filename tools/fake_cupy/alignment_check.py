"""Self-check of the fake CuPy's misaligned-access emulation (see README.md, "The fake CuPy keeps
CuPy's rules"): a kernel over a misaligned array must fail here as it faults on a GPU, and what a GPU
does with one without a kernel (views, byte copies) must work, or the tests of fastnn's byte copies
(tests/test_unaligned.py) prove nothing.

    bash tools/fake_cupy/run.sh python tools/fake_cupy/alignment_check.py
"""
import numpy as np

import cupy as cp


def expect_fault(fn, what):
    try:
        fn()
    except cp.cuda.runtime.CUDARuntimeError as e:
        assert "cudaErrorMisalignedAddress" in str(e), e
        return
    raise SystemExit(f"alignment_check: {what} on a misaligned array did not fault")


def main():
    raw = cp.zeros(4 * 6 + 8, cp.uint8)
    start = (-raw.data.ptr) % 8 + 1
    a = raw[start:start + 24].view(cp.float32).reshape(2, 3)  # one byte past an aligned address
    assert a.data.ptr % 4 == 1

    # Kernels fault.
    faults = {
        "copy": a.copy,
        "astype": lambda: a.astype(cp.float64),
        "a[...] = b": lambda: a.__setitem__(Ellipsis, cp.ones((2, 3), cp.float32)),
        "ufunc": lambda: a + 1,
        "in-place ufunc": lambda: a.__iadd__(1),
        "reduction": a.sum,
        "matmul": lambda: cp.matmul(a, cp.ones((3, 2), cp.float32)),
        "ascontiguousarray of a strided view": lambda: cp.ascontiguousarray(a.T),
        "get of a strided view": lambda: a[:, ::2].get(),
        "fancy indexing": lambda: a[cp.asarray(np.array([1, 0]))],
        "ElementwiseKernel": lambda: cp.ElementwiseKernel("T x", "T y", "y = x;", "check_copy")(a, a),
    }
    for what, fn in faults.items():
        expect_fault(fn, what)

    # Views, shape-only functions, contiguous host copies and byte copies do not.
    assert cp.ascontiguousarray(a) is a or cp.ascontiguousarray(a).data.ptr == a.data.ptr
    a.T.reshape(3, 2)[1:]
    cp.empty_like(a)
    a.get()  # a contiguous array comes to the host with a memcpy
    src = cp.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    a.data.copy_from_device_async(src.data, src.nbytes)
    np.testing.assert_array_equal(a.get(), np.arange(6).reshape(2, 3))
    as_bytes = cp.ndarray((2, 3, 4), cp.uint8, memptr=a.data, strides=a.strides + (1,))
    np.testing.assert_array_equal(cp.ascontiguousarray(as_bytes).view(cp.float32)[..., 0].get(),
                                  np.arange(6).reshape(2, 3))
    try:  # past the allocation: refused (CUDA: cudaErrorInvalidValue; CuPy's ndarray would not check)
        a.data.copy_from_device_async(src.data, src.nbytes + 16)
        raise SystemExit("alignment_check: a copy past the allocation was not refused")
    except cp.cuda.runtime.CUDARuntimeError:
        pass

    # A byte copy in a capture runs at every replay, from the source as it is then.
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        a.data.copy_from_device_async(src.data, src.nbytes)
        graph = stream.end_capture()
    np.testing.assert_array_equal(a.get(), np.arange(6).reshape(2, 3))
    src += 10
    graph.launch(stream)
    np.testing.assert_array_equal(a.get(), np.arange(6).reshape(2, 3) + 10)
    print(f"alignment_check: ok ({len(faults)} faulting kernels, views and byte copies)")


if __name__ == "__main__":
    main()
