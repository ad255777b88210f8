"""Differential fuzz of the functional ops, CPU against the (emulated) GPU: each random case (odd
shapes, strides, dtypes, and bad input: mismatched shapes and dtypes, kernels larger than the
padded input, bad padding, momentum and eps, labels) runs on NumPy and on CuPy arrays, and the two
must agree: the same exception type, or results equal within float tolerance. Labels out of range
are the documented exception: the CPU refuses them, the GPU (which does not synchronise to look)
must give a NaN loss.

    bash tools/fake_cupy/run.sh python tools/fake_cupy/diff_fuzz.py SEED CASES

Prints the number of disagreements and each one.
"""
import sys, traceback, numpy as np, cupy as cp
import fastnn.functional as F
seed = int(sys.argv[1]); n_cases = int(sys.argv[2])
rng = np.random.default_rng(seed)
bad = []

def dev(a):
    return cp.asarray(a) if isinstance(a, np.ndarray) else a

def host(v):
    if isinstance(v, cp.ndarray): return v.get()
    if isinstance(v, (tuple, list)): return type(v)(host(u) for u in v)
    if hasattr(v, "_fields"): return None  # a cache
    return v

def run(fn):
    try:
        return ("ok", host(fn()))
    except (TypeError, ValueError) as e:
        return ("err", type(e).__name__, str(e).split(":")[0])
    except Exception as e:
        return ("crash", type(e).__name__, traceback.format_exc()[-300:])

def close(a, b, tol):
    if a is None or b is None: return True
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(close(u, v, tol) for u, v in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape: return False
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            return np.allclose(a, b, rtol=tol, atol=tol, equal_nan=True)
        return np.array_equal(a, b)
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= tol * (1 + abs(float(a))) or (a != a and b != b)
    return a == b

def check(name, make_cpu, make_gpu, tol):
    c, g = run(make_cpu), run(make_gpu)
    if c[0] == "crash" or g[0] == "crash":
        bad.append((name, c, g)); return
    if c[0] != g[0] or (c[0] == "err" and c[1] != g[1]):
        bad.append((name, c[:2] + (c[2] if c[0]=="err" else "",), g[:2] + (g[2] if g[0]=="err" else "",))); return
    if c[0] == "ok" and not close(c[1], g[1], tol):
        bad.append((name, "values differ", "")); return

def r(*shape, dt=np.float32):
    a = rng.standard_normal(shape).astype(dt)
    if a.ndim >= 2 and rng.random() < 0.2:  # non-contiguous view with the same values
        a = np.ascontiguousarray(np.swapaxes(a, 0, 1)).swapaxes(0, 1)
    return a

def pick(*options): return options[rng.integers(len(options))]

for i in range(n_cases):
    dt = pick(np.float32, np.float64); tol = 2e-4 if dt == np.float32 else 1e-9
    kind = pick("conv", "maxpool", "avgpool", "bn", "cell", "layer", "xent")
    try:
        if kind == "conv":
            n, c, h, w, k = rng.integers(1, 4), rng.integers(1, 5), rng.integers(1, 9), rng.integers(1, 9), rng.integers(1, 5)
            kh, kw = rng.integers(1, 5), rng.integers(1, 5)
            stride = pick(1, 2, 3, (1, 2), (2, 1)); pad = pick(0, 1, 2, (0, 1), (2, 0))
            x = r(n, c, h, w, dt=dt); wt = r(k, pick(c, c, c + 1), kh, kw, dt=pick(dt, dt, dt, np.float32))
            b = pick(None, r(k, dt=dt), r(k + 1, dt=dt))
            wrong_dout = rng.random() < 0.1  # a dout of the wrong shape

            def fwd_bwd(xp_dev, x=x, wt=wt, b=b, stride=stride, pad=pad, wrong_dout=wrong_dout):
                X, W, B = xp_dev(x), xp_dev(wt), (None if b is None else xp_dev(b))
                out, cache = F.conv2d_forward(X, W, B, stride, pad)
                d = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
                if wrong_dout:
                    d = d[..., :-1] if d.shape[-1] > 1 else d[:, :0]
                return out, F.conv2d_backward(xp_dev(d), cache)
            check(f"{i} conv x{x.shape} w{wt.shape} b{None if b is None else b.shape} s{stride} p{pad} {np.dtype(dt).name}",
                  lambda: fwd_bwd(lambda a: a), lambda: fwd_bwd(dev), tol)
        elif kind in ("maxpool", "avgpool"):
            n, c, h, w = rng.integers(1, 3), rng.integers(1, 4), rng.integers(1, 10), rng.integers(1, 10)
            kern = pick(1, 2, 3, (2, 3), (3, 1)); stride = pick(None, 1, 2, (1, 3)); pad = pick(0, 1, (1, 0), 2)
            x = r(n, c, h, w, dt=dt)
            if rng.random() < 0.2: x[0, 0, 0, 0] = x.flat[1] if x.size > 1 else x.flat[0]  # ties
            fw = F.max_pool2d_forward if kind == "maxpool" else F.avg_pool2d_forward
            bw = F.max_pool2d_backward if kind == "maxpool" else F.avg_pool2d_backward
            def fwd_bwd(xp_dev, x=x, kern=kern, stride=stride, pad=pad):
                out, cache = fw(xp_dev(x), kern, stride, pad)
                d = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
                return out, bw(xp_dev(d), cache)
            check(f"{i} {kind} x{x.shape} k{kern} s{stride} p{pad}", lambda: fwd_bwd(lambda a: a), lambda: fwd_bwd(dev), tol)
        elif kind == "bn":
            shape = pick((rng.integers(1, 9), rng.integers(1, 6)), (rng.integers(1, 4), rng.integers(1, 5), rng.integers(1, 5), rng.integers(1, 5)))
            x = r(*shape, dt=dt) * pick(1, 1, 100) + pick(0, 0, 1e3)
            c = shape[1]
            g, be = r(pick(c, c, c + 1), dt=dt), r(c, dt=dt)
            rm0, rv0 = r(c, dt=dt), np.abs(r(c, dt=dt)) + 0.5
            training = pick(True, False); mom = pick(0.1, 0.0, 1.0, 1.5); eps = pick(1e-5, 1e-3, 0.0)
            def fwd_bwd(xp_dev, x=x, g=g, be=be, training=training, mom=mom, eps=eps):
                rm, rv = xp_dev(rm0.copy()), xp_dev(rv0.copy())
                out, cache = F.batch_norm_forward(xp_dev(x), xp_dev(g), xp_dev(be), rm, rv, training, mom, eps)
                d = np.random.default_rng(1).standard_normal(x.shape).astype(x.dtype)
                return out, rm, rv, F.batch_norm_backward(xp_dev(d), cache)
            check(f"{i} bn x{x.shape} g{g.shape} train{training} mom{mom} eps{eps} {np.dtype(dt).name}",
                  lambda: fwd_bwd(lambda a: a), lambda: fwd_bwd(dev), tol * (50 if dt == np.float32 else 1))
        elif kind == "cell":
            B, D, H = rng.integers(1, 5), rng.integers(1, 6), rng.integers(1, 6)
            args = [r(B, D, dt=dt), r(B, H, dt=dt), r(B, H, dt=dt), r(pick(D, D, D + 1), 4 * H, dt=dt), r(H, 4 * H, dt=dt), r(4 * H, dt=dt)]
            dh, dc = pick(None, r(B, H, dt=dt)), pick(None, r(B, H, dt=dt), r(B, H + 1, dt=dt))
            def fwd_bwd(xp_dev, args=args, dh=dh, dc=dc):
                h, c, cache = F.lstm_cell_forward(*[xp_dev(a) for a in args])
                return h, c, F.lstm_cell_backward(None if dh is None else xp_dev(dh), None if dc is None else xp_dev(dc), cache)
            check(f"{i} cell B{B} D{D} H{H} {np.dtype(dt).name}", lambda: fwd_bwd(lambda a: a), lambda: fwd_bwd(dev), tol)
        elif kind == "layer":
            T, B, D, H = rng.integers(1, 5), rng.integers(1, 4), rng.integers(1, 5), rng.integers(1, 5)
            xs = r(T, B, D, dt=dt); h0 = pick(None, r(B, H, dt=dt)); c0 = pick(None, r(B, H, dt=dt))
            Wx, Wh, b = r(D, 4 * H, dt=dt), r(H, 4 * H, dt=dt), r(4 * H, dt=dt)
            dhs = r(T, B, H, dt=dt); dhl = pick(None, r(B, H, dt=dt)); dcl = pick(None, r(B, H, dt=dt))
            def fwd_bwd(xp_dev):
                m = lambda a: None if a is None else xp_dev(a)
                hs, h, c, cache = F.lstm_forward(m(xs), m(h0), m(c0), m(Wx), m(Wh), m(b))
                return hs, h, c, F.lstm_backward(m(dhs), m(dhl), m(dcl), cache)
            check(f"{i} layer T{T} B{B} D{D} H{H} h0{h0 is not None} c0{c0 is not None} {np.dtype(dt).name}",
                  lambda: fwd_bwd(lambda a: a), lambda: fwd_bwd(dev), tol)
        else:
            N, Cc = rng.integers(1, 7), rng.integers(1, 40)
            s = r(N, Cc, dt=dt) * pick(1, 1, 30)
            y = rng.integers(0, Cc, N)
            mode = rng.random()
            if mode < 0.1: y[0] = Cc
            elif mode < 0.15: y[0] = -1
            elif mode < 0.2: y = y.astype(np.float32)
            elif mode < 0.25: y = y[:-1]
            elif mode < 0.3: y = y.astype(np.int32)
            dl = pick(1.0, 0.5, 2.0)
            def fwd_bwd(xp_dev, s=s, y=y, dl=dl):
                loss, cache = F.softmax_cross_entropy_forward(xp_dev(s), xp_dev(y))
                return float(loss), F.softmax_cross_entropy_backward(dl, cache)
            if mode < 0.15:  # documented: the GPU does not look at the labels; a bad one makes the loss NaN
                g = run(lambda: fwd_bwd(dev))
                if g[0] != "ok" or not np.isnan(g[1][0]):
                    bad.append((f"{i} xent bad label on GPU", ("expected NaN",), g[:2]))
                continue
            check(f"{i} xent s{s.shape} y{y.dtype}{y.shape} {np.dtype(dt).name}", lambda: fwd_bwd(lambda a: a), lambda: fwd_bwd(dev), tol)
    except Exception:
        bad.append((f"{i} {kind} harness", traceback.format_exc()[-400:], ""))
print(f"seed {seed}: {n_cases} cases, {len(bad)} disagreements")
for b in bad[:60]:
    name, c, g = b
    short = lambda o: o if isinstance(o, str) else (o[0], o[1], o[2][:90]) if o[0] != "ok" else ("ok",)
    print(name, "| cpu:", short(c), "| gpu:", short(g))
