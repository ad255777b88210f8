"""Runs the repository's real CUDA kernel sources under host emulation (build/libemu.so, made by
build.sh) and compares them with fastnn.reference (float64 NumPy), loaded from this checkout's
sources, so no installed fastnn is needed.

    python3 tools/cuda_emu/check.py                       # all ops, float64, small shapes
    python3 tools/cuda_emu/check.py conv softmax          # some ops
    python3 tools/cuda_emu/check.py --float32 --full      # also float32, and the larger shapes

Exit status 0 when every comparison passes; an assertion error names the first one that fails.
EMU_LIB=path picks another build (e.g. build/libemu_address.so, see README.md).
"""
import argparse
import ctypes
import importlib.util
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _load(name, path, package_dir=None):
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[package_dir] if package_dir else None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# fastnn/__init__.py needs the built fastnn._C; the reference and testing modules are plain NumPy.
R = _load("_emu_fastnn_reference", os.path.join(REPO, "fastnn", "reference", "__init__.py"),
          os.path.join(REPO, "fastnn", "reference"))
assert_close = _load("_emu_fastnn_testing", os.path.join(REPO, "fastnn", "testing.py")).assert_close

lib = ctypes.CDLL(os.environ.get("EMU_LIB", os.path.join(HERE, "build", "libemu.so")))
P = lambda a: None if a is None else a.ctypes.data_as(ctypes.c_void_p)
L = ctypes.c_int64
I64 = lambda t: np.array(t, dtype=np.int64)
lib.bn_chunks.restype = ctypes.c_int64
lib.conv_splits.restype = ctypes.c_int64
lib.conv_scratch.restype = ctypes.c_int64


def sfx(dtype): return "f64" if dtype == np.float64 else "f32"
def tol(dtype, length=1): return (1e-4, 1e-5 * np.sqrt(length) + 1e-6) if dtype == np.float32 else (1e-10, 1e-12 * length + 1e-13)

def pair(v): return (v, v) if isinstance(v, int) else tuple(v)

def conv(case, dtype):
    x_shape, w_shape, stride, padding, bias = case
    stride, padding = pair(stride), pair(padding)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype); w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    n, c, h, wd = x_shape; k, _, r, s = w_shape
    p = (h + 2*padding[0] - r)//stride[0] + 1; q = (wd + 2*padding[1] - s)//stride[1] + 1
    shape = I64((n, c, h, wd, k, r, s, stride[0], stride[1], padding[0], padding[1], p, q))
    out = np.full((n, k, p, q), np.nan, dtype)
    f = sfx(dtype)
    getattr(lib, "conv_fwd_" + f)(P(x), P(w), P(b), P(out), P(shape))
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = np.full(x.shape, np.nan, dtype); dw = np.full(w.shape, np.nan, dtype); db = np.full(k, np.nan, dtype) if bias else None
    getattr(lib, "conv_bwd_data_" + f)(P(dout), P(w), P(dx), P(shape))
    splits = lib.conv_splits(P(shape))
    part = np.full(lib.conv_scratch(P(shape)), np.nan, dtype)
    getattr(lib, "conv_bwd_w_" + f)(P(dout), P(x), P(dw), P(db), P(part), P(shape))
    ro, rc = R.conv2d_forward(x.astype(np.float64), w.astype(np.float64), None if b is None else b.astype(np.float64), stride, padding)
    rdx, rdw, rdb = R.conv2d_backward(dout.astype(np.float64), rc)
    npix = n*p*q
    assert_close(out, ro, *tol(dtype, c*r*s), name="out")
    assert_close(dx, rdx, *tol(dtype, k*r*s), name="dx")
    assert_close(dw, rdw, *tol(dtype, npix), name="dw")
    if bias: assert_close(db, rdb, *tol(dtype, npix), name="db")
    return splits

def pool(case, dtype, kind):
    shape, k, s, pd = case
    k = pair(k); s = k if s is None else pair(s); pd = pair(pd)
    n, c, h, w = shape
    p = (h + 2*pd[0] - k[0])//s[0] + 1; q = (w + 2*pd[1] - k[1])//s[1] + 1
    sh = I64((n, c, h, w, k[0], k[1], s[0], s[1], pd[0], pd[1], p, q))
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    out = np.full((n, c, p, q), np.nan, dtype); dx = np.full(shape, np.nan, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    f = sfx(dtype)
    if kind == "max":
        am = np.full(out.shape, -7, np.int32)
        getattr(lib, "maxf_" + f)(P(x), P(out), P(am), P(sh))
        getattr(lib, "maxb_" + f)(P(dout), P(am), P(dx), P(sh))
        ro, rc = R.max_pool2d_forward(x.astype(np.float64), k, s, pd)
        np.testing.assert_array_equal(am, rc[1])
        rdx = R.max_pool2d_backward(dout.astype(np.float64), rc)
    else:
        getattr(lib, "avgf_" + f)(P(x), P(out), P(sh))
        getattr(lib, "avgb_" + f)(P(dout), P(dx), P(sh))
        ro, rc = R.avg_pool2d_forward(x.astype(np.float64), k, s, pd)
        rdx = R.avg_pool2d_backward(dout.astype(np.float64), rc)
    assert_close(out, ro, *tol(dtype, 9), name=kind + " out")
    assert_close(dx, rdx, *tol(dtype, 9), name=kind + " dx")

def bn(shape, dtype, training, offset=0.0):
    rng = np.random.default_rng(0)
    c = shape[1]
    x = (offset + 2.0 * rng.standard_normal(shape) + 0.5).astype(dtype)
    g = rng.standard_normal(c).astype(dtype); b = rng.standard_normal(c).astype(dtype)
    rm = rng.standard_normal(c).astype(dtype); rv = rng.uniform(0.5, 2.0, c).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    n = shape[0]; l = int(np.prod(shape[2:])) if len(shape) == 4 else 1
    chunks = lib.bn_chunks(L(n), L(c), L(l))
    part = np.full((c, chunks, 2), np.nan)
    f = sfx(dtype)
    y = np.full(shape, np.nan, dtype); rm2, rv2 = rm.copy(), rv.copy()
    if training:
        sm = np.full(c, np.nan, dtype); si = np.full(c, np.nan, dtype)
        getattr(lib, "bn_train_" + f)(P(x), P(g), P(b), P(y), P(sm), P(si), P(rm2), P(rv2), P(part), ctypes.c_double(0.3), ctypes.c_double(1e-5), L(n), L(c), L(l))
    else:
        sm = rm.copy(); si = (1.0 / np.sqrt(rv.astype(np.float64) + 1e-5)).astype(dtype)
        getattr(lib, "bn_eval_" + f)(P(x), P(g), P(b), P(sm), P(si), P(y), L(n), L(c), L(l))
    dx = np.full(shape, np.nan, dtype); dg = np.full(c, np.nan, dtype); db = np.full(c, np.nan, dtype)
    getattr(lib, "bn_bwd_" + f)(P(dout), P(x), P(g), P(sm), P(si), P(dx), P(dg), P(db), P(part), int(training), L(n), L(c), L(l))
    rrm, rrv = rm.astype(np.float64), rv.astype(np.float64)
    ro, rc = R.batch_norm_forward(x.astype(np.float64), g.astype(np.float64), b.astype(np.float64), rrm, rrv, training, 0.3, 1e-5)
    rdx, rdg, rdb = R.batch_norm_backward(dout.astype(np.float64), rc)
    m = n * l
    a = 1e-3 if offset else 0
    assert_close(y, ro, tol(dtype)[0], tol(dtype)[1] + a, name="y")
    assert_close(rm2, rrm, *tol(dtype), name="running_mean")
    assert_close(rv2, rrv, *tol(dtype), name="running_var")
    if not offset:
        assert_close(dx, rdx, *tol(dtype, m), name="dx")
        assert_close(dg, rdg, *tol(dtype, m), name="dgamma")
        assert_close(db, rdb, *tol(dtype, m), name="dbeta")
    return chunks

def bn_nan(shape, dtype):
    """A NaN in a channel makes that channel's saved invstd and running variance NaN, as in the CPU
    kernel and the reference (a clamp of the variance with fmax once turned it into a finite value);
    the other channels are unaffected."""
    rng = np.random.default_rng(5)
    n, c = shape[:2]; l = int(np.prod(shape[2:])) if len(shape) == 4 else 1
    x = rng.standard_normal(shape).astype(dtype)
    x[n - 1, 0] = np.nan
    g = np.ones(c, dtype); b = np.zeros(c, dtype); rm = np.zeros(c, dtype); rv = np.ones(c, dtype)
    part = np.full((c, lib.bn_chunks(L(n), L(c), L(l)), 2), 7.0)
    y = np.full(shape, 7.0, dtype); sm = np.full(c, 7.0, dtype); si = np.full(c, 7.0, dtype)
    getattr(lib, "bn_train_" + sfx(dtype))(P(x), P(g), P(b), P(y), P(sm), P(si), P(rm), P(rv), P(part), ctypes.c_double(0.1), ctypes.c_double(1e-5), L(n), L(c), L(l))
    nan_channel = np.arange(c) == 0
    for name, v in (("save_mean", sm), ("save_invstd", si), ("running_mean", rm), ("running_var", rv)):
        if not (np.isnan(v) == nan_channel).all():
            raise SystemExit(f"batch norm NaN channel {shape}: {name} {v} (NaN expected in channel 0 only)")


def lstm(shape, dtype, upstream):
    bsz, d, hd = shape
    rng = np.random.default_rng(0)
    x, h0, c0 = (rng.standard_normal(s).astype(dtype) for s in ((bsz, d), (bsz, hd), (bsz, hd)))
    Wx, Wh, b = ((rng.standard_normal(s) / np.sqrt(d + hd)).astype(dtype) for s in ((d, 4*hd), (hd, 4*hd), (4*hd,)))
    dh, dc = rng.standard_normal((bsz, hd)).astype(dtype), rng.standard_normal((bsz, hd)).astype(dtype)
    if upstream == "dh": dc = None
    if upstream == "dc": dh = None
    gates = np.ascontiguousarray(x @ Wx + h0 @ Wh)
    c = np.full((bsz, hd), np.nan, dtype); h = c.copy(); tc = c.copy()
    f = sfx(dtype)
    getattr(lib, "lstm_fwd_" + f)(P(gates), P(b), P(c0), P(c), P(h), P(tc), L(bsz), L(hd))
    dg = np.full(gates.shape, np.nan, dtype); dcp = np.full((bsz, hd), np.nan, dtype)
    getattr(lib, "lstm_bwd_" + f)(P(gates), P(c0), P(tc), P(dh), P(dc), P(dg), P(dcp), L(bsz), L(hd))
    rh, rc, cache = R.lstm_cell_forward(*(a.astype(np.float64) for a in (x, h0, c0, Wx, Wh, b)))
    rg = R.lstm_cell_backward(None if dh is None else dh.astype(np.float64), None if dc is None else dc.astype(np.float64), cache)
    assert_close(h, rh, *tol(dtype, d + hd), name="h"); assert_close(c, rc, *tol(dtype, d + hd), name="c")
    assert_close(dcp, rg[2], *tol(dtype, d + hd), name="dc_prev")
    # da from the reference: dx = da Wx^T, so compare da via dWx = x^T da ... check da directly
    i, f_, o, g = cache[5:9]
    tanh_c = np.tanh(rc)
    dhv = np.zeros_like(rc) if dh is None else dh.astype(np.float64)
    dcv = np.zeros_like(rc) if dc is None else dc.astype(np.float64)
    dct = dcv + dhv * o * (1 - tanh_c**2)
    da = np.concatenate([dct*g*i*(1-i), dct*cache[2]*f_*(1-f_), dhv*tanh_c*o*(1-o), dct*i*(1-g**2)], axis=1)
    assert_close(dg, da, *tol(dtype, d + hd), name="dgates")
    assert_close(dg.astype(np.float64).sum(0), rg[5], *tol(dtype, bsz * (d+hd)), name="db")

def softmax(shape, dtype, dloss_on_device):
    rows, classes = shape
    rng = np.random.default_rng(3)
    scores = (3.0 * rng.standard_normal(shape)).astype(dtype)
    if classes > 1:
        scores[0, 0] = -np.inf  # -inf adds nothing to the sum (and must not make NaN)
    y = rng.integers(0, classes, rows).astype(np.int64)
    y[0] = 1 if classes > 1 else 0
    lse = np.full(rows, np.nan, dtype); row_loss = np.full(rows, np.nan); loss = np.full(1, np.nan, dtype)
    f = sfx(dtype)
    getattr(lib, "sx_fwd_" + f)(P(scores), P(y), P(lse), P(row_loss), P(loss), L(rows), L(classes))
    dloss = 0.7
    dptr = np.array([dloss], dtype) if dloss_on_device else None
    ds = np.full(shape, np.nan, dtype)
    getattr(lib, "sx_bwd_" + f)(P(scores), P(y), P(lse), P(dptr), ctypes.c_double(-99.0 if dloss_on_device else dloss),
                                P(ds), L(rows), L(classes))
    s64 = scores.astype(np.float64)
    rloss, cache = R.softmax_cross_entropy_forward(s64, y)
    rds = R.softmax_cross_entropy_backward(dloss, cache)
    m = s64.max(axis=1)
    rlse = m + np.log(np.exp(s64 - m[:, None]).sum(axis=1))
    assert_close(lse, rlse, *tol(dtype, classes), name="lse")
    assert_close(row_loss, rlse - s64[np.arange(rows), y], *tol(dtype, classes), name="row_loss")
    assert_close(loss, np.array([rloss]), *tol(dtype, classes * rows), name="loss")
    assert_close(ds, rds, *tol(dtype, classes), name="dscores")


def softmax_nan(classes, dtype):
    """A NaN score anywhere in a row makes that row's lse and loss NaN (never a finite, wrong loss);
    rows without one are unaffected. Rows: NaN at the label, elsewhere, in the last column, a row of
    -inf plus one NaN (a lane that saw only -inf and NaN), and a clean row."""
    rows = 5
    rng = np.random.default_rng(4)
    scores = rng.standard_normal((rows, classes)).astype(dtype)
    y = np.zeros(rows, np.int64)
    scores[0, 0] = np.nan
    scores[1, classes // 2] = np.nan
    scores[2, classes - 1] = np.nan
    scores[3, :] = -np.inf
    scores[3, 0] = 0.0
    scores[3, classes - 1] = np.nan
    lse = np.full(rows, 7.0, dtype); row_loss = np.full(rows, 7.0); loss = np.full(1, 7.0, dtype)
    getattr(lib, "sx_fwd_" + sfx(dtype))(P(scores), P(y), P(lse), P(row_loss), P(loss), L(rows), L(classes))
    nan_rows = np.array([True, True, True, True, False])
    if not (np.isnan(lse) == nan_rows).all() or not (np.isnan(row_loss) == nan_rows).all() or not np.isnan(loss[0]):
        raise SystemExit(f"softmax NaN rows (classes {classes}): lse {lse}, row_loss {row_loss}, loss {loss}")


def gemm(shape, dtype):
    """C = op(A) op(B) and C += op(A) op(B) for all four transposes, against NumPy in float64; sizes
    that are not multiples of the 16 x 16 tile and a K of 0 (C = 0, or C unchanged)."""
    m, n, k = shape
    rng = np.random.default_rng(5)
    f = getattr(lib, "gemm_" + sfx(dtype))
    for ta in (False, True):
        for tb in (False, True):
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
            want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
            c = np.full((m, n), np.nan, dtype)
            f(P(a), P(b), P(c), L(m), L(n), L(k), int(ta), int(tb), 0)
            assert_close(c, want, *tol(dtype, k), name=f"gemm {shape} ta={ta} tb={tb}")
            start = rng.standard_normal((m, n)).astype(dtype)
            c = start.copy()
            f(P(a), P(b), P(c), L(m), L(n), L(k), int(ta), int(tb), 1)
            assert_close(c, start + want, *tol(dtype, k + 1), name=f"gemm {shape} ta={ta} tb={tb} accumulate")


# Small default shapes: the emulator runs one host thread per CUDA thread (256 or 512 per block,
# fixed by the kernels), blocks one after another. --full adds the larger shapes.
CONV_FULL = [
    ((2, 3, 7, 7), (4, 3, 3, 3), 2, 1, True),
    ((1, 1, 12, 12), (6, 1, 5, 5), 1, 0, True),
    ((2, 5, 9, 6), (7, 5, 2, 3), (2, 1), (1, 0), False),
    ((1, 2, 8, 11), (33, 2, 3, 1), (1, 2), (0, 1), True),
    ((3, 16, 6, 6), (17, 16, 3, 3), 1, 1, True),
    ((8, 8, 16, 16), (16, 8, 3, 3), 1, 1, True),
    ((2, 3, 10, 9), (70, 3, 1, 1), 3, 0, True),
    ((1, 4, 5, 5), (3, 4, 5, 5), 1, 2, False),
    ((2, 20, 9, 9), (130, 20, 3, 3), 2, 1, True),
    ((5, 2, 6, 6), (3, 2, 3, 3), 1, 1, True),
]
CONV = [
    ((2, 3, 7, 7), (4, 3, 3, 3), 2, 1, True),
    ((2, 5, 9, 6), (7, 5, 2, 3), (2, 1), (1, 0), False),
    ((1, 2, 8, 11), (33, 2, 3, 1), (1, 2), (0, 1), True),
    ((5, 2, 6, 6), (3, 2, 3, 3), 1, 1, True),  # split-K weight gradient (splits > 1)
]
POOL_FULL = [((2, 3, 7, 7), 3, 2, 1), ((1, 3, 7, 7), 2, None, 0), ((2, 2, 9, 6), (3, 2), (2, 1), (1, 0)),
        ((1, 4, 8, 11), (2, 3), (1, 2), (1, 1)), ((2, 3, 10, 10), 2, 3, 0), ((1, 1, 5, 5), 5, 1, 2), ((2, 5, 33, 40), 3, 1, 1)]
POOL = [((2, 3, 7, 7), 3, 2, 1), ((2, 2, 9, 6), (3, 2), (2, 1), (1, 0)), ((1, 1, 5, 5), 5, 1, 2)]
BN_FULL = [(7, 5), (300, 37), (1000, 3), (2, 3, 7, 7), (1, 4, 5, 5), (64, 3, 4, 4), (3, 2, 45, 50)]
BN = [(7, 5), (300, 37), (2, 3, 7, 7), (1, 4, 5, 5)]
LSTM_FULL = [(1, 1, 1), (3, 5, 7), (4, 33, 65)]
LSTM = [(1, 1, 1), (3, 5, 7)]
SOFTMAX_FULL = [(1, 1), (5, 10), (9, 33), (20, 1024), (2, 1025), (3, 3000)]
SOFTMAX = [(1, 1), (9, 33), (2, 1025)]  # warp-per-row kernel, and block-per-row above 1024 classes

GEMM_FULL = [(1, 1, 1), (17, 5, 33), (64, 120, 400), (3, 40, 0)]
GEMM = [(1, 1, 1), (17, 5, 33), (3, 4, 0)]

OPS = ["conv", "pool", "bn", "lstm", "softmax", "gemm"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ops", nargs="*", default=[], help="ops to check (default: all)")
    ap.add_argument("--float32", action="store_true", help="also check float32")
    ap.add_argument("--full", action="store_true", help="also the larger shapes (slow: minutes per op)")
    args = ap.parse_args()
    which = args.ops or OPS
    full = args.full
    t0 = time.time()
    for dtype in (np.float64, np.float32) if args.float32 else (np.float64,):
        d = dtype.__name__
        if "conv" in which:
            for case in CONV_FULL if full else CONV:
                print("conv", case, d, "splits", conv(case, dtype), "ok", flush=True)
        if "pool" in which:
            for case in POOL_FULL if full else POOL:
                for kind in ("max", "avg"):
                    pool(case, dtype, kind)
            print("pool", d, "ok", flush=True)
        if "bn" in which:
            for shape in BN_FULL if full else BN:
                for tr in (True, False):
                    print("bn", shape, "training" if tr else "eval", d, "chunks", bn(shape, dtype, tr), "ok", flush=True)
            bn((16, 4, 9, 9), dtype, True, offset=1e4)
            print("bn large mean", d, "ok", flush=True)
            for shape in ((3, 3, 2, 5), (70, 3)):
                bn_nan(shape, dtype)
            print("bn NaN channel", d, "ok", flush=True)
        if "lstm" in which:
            for shape in LSTM_FULL if full else LSTM:
                for up in ("both", "dh", "dc"):
                    lstm(shape, dtype, up)
            print("lstm", d, "ok", flush=True)
        if "softmax" in which:
            for shape in SOFTMAX_FULL if full else SOFTMAX:
                for on_device in (False, True):
                    softmax(shape, dtype, on_device)
            for classes in (2, 33, 1025):
                softmax_nan(classes, dtype)
            print("softmax", d, "ok", flush=True)
        if "gemm" in which:
            for shape in GEMM_FULL if full else GEMM:
                gemm(shape, dtype)
            print("gemm", d, "ok", flush=True)
    print(f"all ok ({', '.join(which)}) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
