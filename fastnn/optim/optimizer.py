"""Optimizers, from simple to complex. Every one updates parameters in place:

    opt = Adam(model.parameters(), lr=1e-3)
    opt.zero_grad(); ...backward...; opt.step()

Two general forms carry all of them (as tinygrad derives its optimizers from one):

    SGD family (SGD, Momentum, Nesterov), velocity v with momentum mu:
        plain       w -= lr g
        momentum    v = mu v + lr g;   w -= v
        Nesterov    v = mu v + lr g;   w -= mu v + lr g      (the gradient at the look-ahead point
                                                             w - mu v, rewritten in terms of w)
    Adaptive family (Adagrad, RMSProp, Adam, AdamW), first moment m, second moment s:
        m = b1 m + (1 - b1) g                (b1 = 0: m = g)
        s = rho s + c g^2
        w -= lr * m_hat / (sqrt(s_hat) + eps),   m_hat = m / (1 - b1^t), s_hat = s / (1 - rho^t)
                                                 when bias-corrected, else m_hat = m, s_hat = s
        Adagrad:  b1 = 0, rho = 1, c = 1, no correction      (s sums every g^2 seen)
        RMSProp:  b1 = 0, rho, c = 1 - rho, no correction
        Adam:     b1, rho = b2, c = 1 - b2, bias-corrected

Hyperparameter ranges, checked by check_hyperparameters (ValueError outside, TypeError for a non-number)
in the constructors, when lr is set (by hand or by a schedule) and in load_state_dict:
    lr, weight_decay, l1, decoupled_weight_decay    finite, >= 0
    max_norm, eps                                   finite, > 0   (eps = inf would make every step 0)
    momentum / beta, beta1, beta2, rho              in [0, 1)     (rho = 1 makes RMSProp's c = 1 - rho = 0,
                                                                   so s stays 0 and the step is lr g / eps)

Regularisers every optimizer accepts:
    weight_decay (L2):     g <- g + weight_decay * w           (added to the gradient)
    l1:                    g <- g + l1 * sign(w)
    decoupled_weight_decay w <- w (1 - lr * decoupled_weight_decay) before the update (AdamW)
    max_norm:              after the update, each unit's incoming weight vector is rescaled to norm
                           <= max_norm: columns of 2-D (fan_in, fan_out) weights, filters (axis 0)
                           of k-D conv weights; 1-D parameters (biases) are left alone.

On NumPy the update is one fused native pass per parameter (fastnn._C.sgd_update / adaptive_update,
OpenMP) doing the same arithmetic in the same order as the step-by-step in-place ufuncs kept below,
which still run for arrays it does not take (non-contiguous, or with _NATIVE_CPU_UPDATE off: the tests
compare the two bit for bit); on CuPy each update is one fused elementwise kernel, compiled the first
time CuPy arrays are seen, which reads the step's scalars (lr, bias corrections) from a small device
array written once per step, so that a captured CUDA graph replays with each step's values.
"""
import math
from collections import OrderedDict

import numpy as np

from .. import _backend
from ..functional._checks import integer_or_none, real_number

# The fused native update on C-contiguous float NumPy arrays (off: the NumPy ufunc path everywhere).
_NATIVE_CPU_UPDATE = True


# The rule table for optimizer hyperparameters: name -> the bounds real_number checks (always finite).
_HYPERPARAMETER_RULES = {
    "lr": dict(at_least=0.0),
    "weight_decay": dict(at_least=0.0),
    "l1": dict(at_least=0.0),
    "decoupled_weight_decay": dict(at_least=0.0),
    "max_norm": dict(above=0.0),
    "eps": dict(above=0.0),
    "momentum": dict(at_least=0.0, below=1.0),
    "beta": dict(at_least=0.0, below=1.0),
    "beta1": dict(at_least=0.0, below=1.0),
    "beta2": dict(at_least=0.0, below=1.0),
    "rho": dict(at_least=0.0, below=1.0),
}


def check_hyperparameters(owner, **values):
    """Checks each name=value against the module's ranges (module docstring) and returns the values
    as floats, in order. The constructors, the lr setter and load_state_dict all check through here.

    Raises:
        TypeError: a value that is not a real number.
        ValueError: a value outside its range (NaN and +-inf included).
    """
    return [real_number(owner, name, value, **_HYPERPARAMETER_RULES[name]) for name, value in values.items()]


def _check_param(i, p):
    if not (hasattr(p, "data") and hasattr(p, "grad")):
        raise TypeError(f"optimizer: parameter {i} is a {type(p).__name__}; pass model.parameters()")
    if p.data.dtype.kind != "f":
        raise TypeError(f"optimizer: parameter {i} has dtype {p.data.dtype}; only float parameters train")
    if _backend.is_cupy_array(p.data) and not _backend.cupy_is_aligned(p.data):
        # The in-place update kernel would fault on it (cudaErrorMisalignedAddress spoils the context).
        raise ValueError(f"optimizer: parameter {i} is a CuPy view whose elements are not aligned to their "
                         f"size ({p.data.dtype} at an odd byte offset); give the parameter an array CuPy allocated "
                         "itself (cupy.empty, cupy.asarray of a NumPy array, ...)")


class Optimizer:
    """Base class: the loop over parameters, the regularisers and the state dict.

    Subclasses name their per-parameter state arrays in `_state_names` and define _update_cpu and
    _update_cuda for one parameter.
    """

    _state_names = ()

    def __init__(self, params, lr, weight_decay=0.0, l1=0.0, decoupled_weight_decay=0.0, max_norm=None):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer: got an empty parameter list")
        for i, p in enumerate(self.params):
            _check_param(i, p)
        owner = type(self).__name__
        self._lr, self.weight_decay, self.l1, self.decoupled_weight_decay = check_hyperparameters(
            owner, lr=lr, weight_decay=weight_decay, l1=l1, decoupled_weight_decay=decoupled_weight_decay)
        self.max_norm = None if max_norm is None else check_hyperparameters(owner, max_norm=max_norm)[0]
        self.t = 0
        self.state = [dict() for _ in self.params]
        self._scratch = [dict() for _ in self.params]
        self._cuda_scalars = {}  # dtype -> (device array of the CUDA kernels' scalars, its 0-d views)

    @property
    def lr(self):
        """The learning rate; setting it (by hand or from a schedule) checks it is finite and >= 0."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check_hyperparameters(type(self).__name__, lr=value)[0]

    def zero_grad(self):
        for p in self.params:
            p.grad.fill(0)

    def step(self):
        """One update of every parameter from its .grad."""
        self._begin_step()
        self._apply_updates()

    def _begin_step(self):
        """The host half of step(): the step counter, and the step's scalars copied to the device
        for CuPy parameters (fastnn.training.CudaGraphStep calls this before each graph launch)."""
        self.t += 1
        if any(_backend.is_cupy_array(p.data) for p in self.params):
            self._upload_cuda_scalars()

    def _apply_updates(self):
        """The device half of step(): every parameter's update, with no host<->device transfer for
        CuPy parameters (their scalars are read from device memory), so a CUDA graph can capture it."""
        self._ensure_state()
        for i, p in enumerate(self.params):
            state = self.state[i]
            if _backend.is_cupy_array(p.data):
                self._update_cuda(i, p, state)
            elif _NATIVE_CPU_UPDATE and _backend.native_float_arrays(p.data, p.grad, *state.values()):
                self._update_native(p, state)
            else:
                g = self._regularised_grad_cpu(i, p)
                if self.decoupled_weight_decay:
                    p.data *= 1.0 - self.lr * self.decoupled_weight_decay
                self._update_cpu(i, p, state, g)
            if self.max_norm is not None and p.data.ndim >= 2:
                self._apply_max_norm(p.data)

    def _ensure_state(self):
        """Creates the per-parameter state arrays that do not exist yet (zeros), before the first update,
        and moves existing ones to their parameter's device and dtype when the model was moved or cast
        (model.to) after earlier steps."""
        for i, p in enumerate(self.params):
            state = self.state[i]
            for name in self._state_names:
                a = state.get(name)
                if a is None:
                    state[name] = _backend.array_module(p.data).zeros_like(p.data)
                elif a.shape != p.data.shape:
                    raise ValueError(f"{type(self).__name__}: parameter {i} has shape {tuple(p.data.shape)} but its "
                                     f"state {name!r} has {tuple(a.shape)}: the parameter was replaced by one of "
                                     "another shape; create a new optimizer")
                elif type(a) is not type(p.data) or a.dtype != p.data.dtype:
                    state[name] = _backend.like(p.data, a)

    # ---- helpers shared by the updates -------------------------------------------------------------
    def _buffer(self, i, name, like):
        buf = self._scratch[i].get(name)
        if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
            buf = self._scratch[i][name] = np.empty_like(like)
        return buf

    def _regularised_grad_cpu(self, i, p):
        """g + weight_decay w + l1 sign(w), in a scratch buffer (p.grad itself is not modified)."""
        if not (self.weight_decay or self.l1):
            return p.grad
        g = self._buffer(i, "regularised_grad", p.data)
        np.multiply(p.data, self.weight_decay, out=g)
        g += p.grad
        if self.l1:
            sign = self._buffer(i, "sign", p.data)
            np.sign(p.data, out=sign)
            sign *= self.l1
            g += sign
        return g

    def _cuda_scalar_values(self):
        """The scalar arguments of this optimizer's CUDA kernel, in its order (after g)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _cuda_scalar_values")

    def _upload_cuda_scalars(self):
        """Writes this step's kernel scalars to a small device array per parameter dtype. The kernels
        take 0-d views of it, so they read the values at run time: a captured CUDA graph then uses
        each step's learning rate and bias corrections instead of the ones current at capture."""
        values = np.array(self._cuda_scalar_values(), dtype=np.float64)
        cp = _backend.cupy_module()
        for dtype in {p.data.dtype for p in self.params if _backend.is_cupy_array(p.data)}:
            entry = self._cuda_scalars.get(dtype)
            if entry is None or entry[0].size != values.size:
                buf = cp.empty(values.size, dtype=dtype)
                views = tuple(buf[k:k + 1].reshape(()) for k in range(values.size))
                entry = self._cuda_scalars[dtype] = (buf, views)
            # On the current stream, explicitly: the kernels that read these scalars (and a graph
            # replay of the previous step, CudaGraphStep's non-blocking stream) are ordered on it.
            # In older CuPy releases a set() without a stream is a synchronous copy on the legacy
            # default stream, which does not wait for a non-blocking stream: it could overwrite the
            # scalars while the previous step still reads them, or land after this step read them.
            entry[0].set(values.astype(dtype), stream=cp.cuda.get_current_stream())

    def _cuda_scalar_views(self, p):
        """0-d device views of the uploaded scalars, in the parameter's dtype."""
        return self._cuda_scalars[p.data.dtype][1]

    def _regulariser_values(self):
        """(weight_decay, l1, keep = 1 - lr * decoupled_weight_decay): the kernels' shared prologue."""
        return self.weight_decay, self.l1, 1.0 - self.lr * self.decoupled_weight_decay

    def _apply_max_norm(self, w):
        xp = _backend.array_module(w)
        axes = (0,) if w.ndim == 2 else tuple(range(1, w.ndim))
        norms = xp.sqrt((w * w).sum(axis=axes, keepdims=True))
        w *= xp.minimum(1, self.max_norm / xp.maximum(norms, 1e-12)).astype(w.dtype, copy=False)

    # ---- checkpoints -------------------------------------------------------------------------------
    def state_dict(self):
        """A flat dict of NumPy arrays (np.savez-ready): 'step', 'lr' and 'state.<i>.<name>'."""
        out = OrderedDict(step=np.array(self.t), lr=np.array(self.lr))
        for i, state in enumerate(self.state):
            for name, a in state.items():
                out[f"state.{i}.{name}"] = a.get() if _backend.is_cupy_array(a) else a.copy()
        return out

    def load_state_dict(self, state_dict):
        """Restores step, lr and per-parameter state; shapes must match the parameters.

        Everything is checked before anything changes: lr by the constructor's rules
        (check_hyperparameters), step an integer >= 0, state arrays finite (and the second moment s
        >= 0, as sqrt(s) needs), so a bad checkpoint raises instead of turning the weights into NaN.
        """
        self.t, self._lr, self.state = self._check_state_dict(state_dict)

    def _check_state_dict(self, state_dict):
        """load_state_dict's checks, changing nothing; returns (step, lr, per-parameter state)."""
        if "step" not in state_dict or "lr" not in state_dict:
            raise KeyError("optimizer load_state_dict: needs 'step' and 'lr'")
        owner = f"{type(self).__name__} load_state_dict"
        lr = check_hyperparameters(owner, lr=state_dict["lr"])[0]
        step = integer_or_none(state_dict["step"])
        if step is None or step < 0:
            raise ValueError(f"{owner}: step must be an integer >= 0, got {state_dict['step']!r}")
        new_state = [dict() for _ in self.params]
        for key, a in state_dict.items():
            if key in ("step", "lr"):
                continue
            parts = key.split(".")
            if len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit() or parts[2] not in self._state_names:
                raise KeyError(f"optimizer load_state_dict: unexpected key {key!r} for {type(self).__name__}")
            i = int(parts[1])
            if i >= len(self.params):
                raise ValueError(f"optimizer load_state_dict: {key} but the optimizer has "
                                 f"{len(self.params)} parameters")
            p = self.params[i].data
            if tuple(a.shape) != tuple(p.shape):
                raise ValueError(f"optimizer load_state_dict: {key} has shape {tuple(a.shape)}, "
                                 f"parameter {i} has {tuple(p.shape)}")
            xp = _backend.array_module(p)
            a = new_state[i][parts[2]] = _backend.like(p, a, copy=True)
            if not bool(xp.isfinite(a).all()):
                raise ValueError(f"{owner}: {key} has non-finite values (NaN or inf)")
            if parts[2] == "s" and bool((a < 0).any()):
                raise ValueError(f"{owner}: {key} (the second moment) has negative values")
        return step, lr, new_state


_cuda_kernels = {}


def _cuda_kernel(name):
    """The fused CuPy update kernels, compiled on first use (CuPy is imported only then)."""
    if name in _cuda_kernels:
        return _cuda_kernels[name]
    cp = _backend.cupy_module()
    # Shared prologue: the regularised gradient and the decoupled decay, as in Optimizer.step.
    prologue = "T grad = g + wd * w + l1 * (T)((w > (T)0) - (w < (T)0)); w = w * keep;"
    sources = {
        "sgd": ("T g, T wd, T l1, T keep, T lr", "T w", prologue + "w -= lr * grad;"),
        "sgd_momentum": (
            "T g, T wd, T l1, T keep, T lr, T mu, int32 nesterov", "T w, T v",
            prologue + "v = mu * v + lr * grad; w -= nesterov ? mu * v + lr * grad : v;",
        ),
        "adaptive": (
            "T g, T wd, T l1, T keep, T b1, T rho, T c, T step_size, T inv_sqrt_bc2, T eps", "T w, T m, T s",
            prologue + "m = b1 * m + ((T)1 - b1) * grad; s = rho * s + c * grad * grad;"
                       "w -= step_size * m / (sqrt(s) * inv_sqrt_bc2 + eps);",
        ),
    }
    params, outs, body = sources[name]
    _cuda_kernels[name] = cp.ElementwiseKernel(params, outs, body, f"fastnn_{name}_update")
    return _cuda_kernels[name]


class SGD(Optimizer):
    """Stochastic gradient descent, w -= lr g; with momentum mu > 0: v = mu v + lr g, w -= v;
    with nesterov=True: v = mu v + lr g, w -= mu v + lr g (see the module docstring)."""

    def __init__(self, params, lr, momentum=0.0, nesterov=False, **regularisers):
        super().__init__(params, lr, **regularisers)
        momentum, = check_hyperparameters(type(self).__name__, momentum=momentum)
        if nesterov and momentum == 0.0:
            raise ValueError(f"{type(self).__name__}: Nesterov needs momentum > 0")
        self.momentum, self.nesterov = momentum, bool(nesterov)
        self._state_names = ("velocity",) if momentum else ()

    def _update_cpu(self, i, p, state, g):
        step = self._buffer(i, "step", p.data)
        np.multiply(g, self.lr, out=step)  # lr g
        if not self.momentum:
            p.data -= step
            return
        v = state["velocity"]
        v *= self.momentum
        v += step  # v = mu v + lr g
        if self.nesterov:
            p.data -= step  # w -= lr g ...
            np.multiply(v, self.momentum, out=step)  # ... and mu v
            p.data -= step
        else:
            p.data -= v

    def _update_native(self, p, state):
        _backend._C.sgd_update(p.data, p.grad, state.get("velocity"), *self._regulariser_values(), self.lr,
                               self.momentum, self.nesterov)

    def _cuda_scalar_values(self):
        values = (*self._regulariser_values(), self.lr)
        return values + (self.momentum,) if self.momentum else values

    def _update_cuda(self, i, p, state):
        scalars = self._cuda_scalar_views(p)
        if not self.momentum:
            _cuda_kernel("sgd")(p.grad, *scalars, p.data)
        else:
            _cuda_kernel("sgd_momentum")(p.grad, *scalars, np.int32(self.nesterov), p.data, state["velocity"])


class Momentum(SGD):
    """SGD with momentum (Polyak's heavy ball): v = beta v + lr g;  w -= v."""

    def __init__(self, params, lr, beta=0.9, **regularisers):
        check_hyperparameters(type(self).__name__, beta=beta)
        super().__init__(params, lr, momentum=beta, **regularisers)


class Nesterov(SGD):
    """Nesterov accelerated gradient: v = beta v + lr g;  w -= beta v + lr g, which is the momentum
    step taken with the gradient at the look-ahead point w - beta v (Sutskever et al. 2013)."""

    def __init__(self, params, lr, beta=0.9, **regularisers):
        beta, = check_hyperparameters(type(self).__name__, beta=beta)
        if beta == 0.0:
            raise ValueError("Nesterov: beta must be > 0 (with beta = 0 there is no velocity to look ahead with)")
        super().__init__(params, lr, momentum=beta, nesterov=True, **regularisers)


class _Adaptive(Optimizer):
    """The adaptive family (module docstring): m = b1 m + (1 - b1) g, s = rho s + c g^2,
    w -= lr m_hat / (sqrt(s_hat) + eps).

    b1 and rho are checked by the subclasses under their public names (beta1/beta2 for Adam, rho for
    RMSProp: in [0, 1)); Adagrad's rho = 1 (with c = 1) is fixed, not a user's choice. eps is checked here.
    """

    _state_names = ("m", "s")

    def __init__(self, params, lr, b1, rho, c, eps, bias_correction, **regularisers):
        super().__init__(params, lr, **regularisers)
        eps, = check_hyperparameters(type(self).__name__, eps=eps)
        self.b1, self.rho, self.c, self.eps = float(b1), float(rho), float(c), eps
        self.bias_correction = bool(bias_correction)
        if self.b1 == 0.0:
            self._state_names = ("s",)  # m = g: no first-moment state on the CPU path

    def _corrections(self):
        """(lr / (1 - b1^t), 1 / sqrt(1 - rho^t)) with bias correction, else (lr, 1)."""
        if not self.bias_correction:
            return self.lr, 1.0
        return self.lr / (1.0 - self.b1 ** self.t), 1.0 / math.sqrt(1.0 - self.rho ** self.t)

    def _update_cpu(self, i, p, state, g):
        step_size, inv_sqrt_bc2 = self._corrections()
        tmp = self._buffer(i, "tmp", p.data)
        if self.b1:
            m = state["m"]
            m *= self.b1
            np.multiply(g, 1.0 - self.b1, out=tmp)
            m += tmp  # m = b1 m + (1 - b1) g
        else:
            m = g
        s = state["s"]
        if self.rho != 1.0:
            s *= self.rho
        np.multiply(g, g, out=tmp)
        if self.c != 1.0:
            tmp *= self.c
        s += tmp  # s = rho s + c g^2
        np.sqrt(s, out=tmp)
        if inv_sqrt_bc2 != 1.0:
            tmp *= inv_sqrt_bc2
        tmp += self.eps  # sqrt(s_hat) + eps
        np.divide(m, tmp, out=tmp)
        tmp *= step_size
        p.data -= tmp

    def _update_native(self, p, state):
        step_size, inv_sqrt_bc2 = self._corrections()
        _backend._C.adaptive_update(p.data, p.grad, state.get("m"), state["s"], *self._regulariser_values(),
                                    self.b1, 1.0 - self.b1, self.rho, self.c, step_size, inv_sqrt_bc2, self.eps)

    def _ensure_state(self):
        super()._ensure_state()
        if not self.b1:  # the fused CUDA kernel always carries m; with b1 = 0 it is just g, so it is not state
            for i, p in enumerate(self.params):
                if _backend.is_cupy_array(p.data) and "m" not in self._scratch[i]:
                    self._scratch[i]["m"] = _backend.cupy_module().zeros_like(p.data)

    def _update_cuda(self, i, p, state):
        m = state["m"] if self.b1 else self._scratch[i]["m"]
        _cuda_kernel("adaptive")(p.grad, *self._cuda_scalar_views(p), p.data, m, state["s"])

    def _cuda_scalar_values(self):
        return (*self._regulariser_values(), self.b1, self.rho, self.c, *self._corrections(), self.eps)


class Adagrad(_Adaptive):
    """Adagrad (Duchi et al. 2011): s += g^2;  w -= lr g / (sqrt(s) + eps)."""

    def __init__(self, params, lr=1e-2, eps=1e-10, **regularisers):
        super().__init__(params, lr, b1=0.0, rho=1.0, c=1.0, eps=eps, bias_correction=False, **regularisers)


class RMSProp(_Adaptive):
    """RMSProp (Hinton): s = rho s + (1 - rho) g^2;  w -= lr g / (sqrt(s) + eps)."""

    def __init__(self, params, lr=1e-2, rho=0.99, eps=1e-8, **regularisers):
        rho, = check_hyperparameters(type(self).__name__, rho=rho)  # rho = 1 would make 1 - rho = 0
        super().__init__(params, lr, b1=0.0, rho=rho, c=1.0 - rho, eps=eps, bias_correction=False,
                         **regularisers)


class Adam(_Adaptive):
    """Adam (Kingma & Ba 2015): m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
    w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, **regularisers):
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"{type(self).__name__}: betas must be a pair (beta1, beta2), got {betas!r}")
        b1, b2 = check_hyperparameters(type(self).__name__, beta1=betas[0], beta2=betas[1])
        super().__init__(params, lr, b1=b1, rho=b2, c=1.0 - b2, eps=eps, bias_correction=True, **regularisers)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): w <- w (1 - lr wd), then the
    Adam step; the decay never enters m or v. Here weight_decay is that decoupled decay, so AdamW
    takes no decoupled_weight_decay and no L2 term: for L2 (added to the gradient), alone or with
    the decoupled decay, use Adam(weight_decay=..., decoupled_weight_decay=...)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, **regularisers):
        if "decoupled_weight_decay" in regularisers:
            raise TypeError("AdamW: weight_decay is already the decoupled decay, so decoupled_weight_decay is not "
                            "taken; for L2 as well, use Adam(weight_decay=..., decoupled_weight_decay=...)")
        check_hyperparameters(type(self).__name__, weight_decay=weight_decay)  # named as the caller wrote it
        super().__init__(params, lr, betas=betas, eps=eps, decoupled_weight_decay=weight_decay, **regularisers)
