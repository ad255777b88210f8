"""Input checks shared by the layers: a clear TypeError/ValueError before any arithmetic runs."""
from .. import _backend
from ..functional._checks import _is_array, float_array, int_at_least, int_pair, real_number, same_device, same_dtype


def layer_input(layer, x, like, ndim=None):
    """x is a float array with `ndim` dimensions, on the device and of the dtype of the array `like`
    (the layer's weight), so no silent up-casts or host/device mix-ups happen inside a layer."""
    float_array(f"{layer} input", x, ndim=ndim)
    same_device(input=x, weight=like)
    if x.dtype != like.dtype:
        raise TypeError(f"{layer}: input is {x.dtype} but the layer's parameters are {like.dtype}; "
                        f"cast the input or call .to(dtype={str(x.dtype)!r}) on the model")
    return x


def last_dim(layer, x, size):
    if x.ndim == 0 or x.shape[-1] != size:
        raise ValueError(f"{layer}: expected the last dimension to be {size}, got shape {tuple(x.shape)}")


def same_shape(layer, a_name, a, b_name, b):
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{layer}: {a_name} has shape {tuple(a.shape)} but {b_name} has {tuple(b.shape)}")


def forward_kind(x):
    """What upstream_grad needs of a forward's output when a layer keeps no array of it: its dtype
    and array type (NumPy or CuPy)."""
    return x.dtype, type(x)


def upstream_grad(layer, dout, shape, like, name="dout"):
    """dout = dL/dy (called `name` in the layer's backward) is an array of exactly `shape`, the
    shape the layer's forward returned, and of the forward's dtype, on its device. `like` is an
    array from the forward (its dtype and device are the reference) or, where the layer kept none,
    forward_kind(x) of it. Without this a transposed, flattened or broadcastable dout would be
    reshaped or broadcast into a silently wrong gradient, and a float64 dout would turn a float32
    model's gradients float64 layer by layer. The checks run before the layer touches a gradient.
    A few comparisons, no copy."""
    if not _is_array(dout):
        raise TypeError(f"{layer}.backward: {name} must be a NumPy or CuPy array, got {type(dout).__name__}")
    if dout.shape != shape:
        raise ValueError(f"{layer}.backward: {name} must have the shape of the forward output {tuple(shape)}, "
                         f"got {tuple(dout.shape)}")
    dtype, array_type = like if type(like) is tuple else (like.dtype, type(like))
    if dout.dtype != dtype:
        raise TypeError(f"{layer}.backward: {name} is {dout.dtype} but the forward output was {dtype}; "
                        f"pass dL/dy in the forward's dtype")
    if not isinstance(dout, array_type):
        where = "GPU (CuPy)" if _backend.is_cupy_array(dout) else "CPU (NumPy)"
        raise TypeError(f"{layer}.backward: {name} is on the {where} but the forward ran on the other device; "
                        "arrays must all be NumPy or all CuPy")
    return dout


# Float hyperparameters (slopes, eps, p, margins): the one check the whole package uses.
hyperparameter = real_number


__all__ = ["float_array", "forward_kind", "hyperparameter", "int_at_least", "int_pair", "last_dim", "layer_input", "same_device", "same_dtype", "same_shape",
           "upstream_grad"]
