"""A whole training step captured once as a CUDA graph and replayed: one launch per step.

At LeNet-5's size a GPU step is a few dozen small kernels, and launching them from Python costs more
than running them. A CUDA graph records the step's kernels once (stream capture) and replays the
whole sequence with one launch. What the graph bakes in, and how this class keeps each of those true:

- Memory addresses. Every replay reads and writes the buffers used at capture: the batch goes into
  fixed input buffers (copied in before each launch), the parameters, gradients and optimizer moments
  must be the same arrays (checked before every launch: if any was replaced, as load_state_dict does
  to the optimizer's moments, the step is captured again), and the temporaries come from a private
  memory pool that lives as long as the graph, so nothing outside the graph is ever given their memory.
- Kernel arguments. Scalars passed at launch are frozen, so the optimizer's per-step scalars (lr from a
  schedule, Adam's bias corrections) are read from device memory written before each launch
  (Optimizer._begin_step), and clipping by global norm computes its scale on the device.
- Shapes and control flow. A graph is valid for one input shape and dtype; other shapes (the last,
  smaller batch of an epoch) run as eager steps. Models that draw random numbers (Dropout) or carry
  state from batch to batch would replay the capture's values and are refused.
- No host synchronisation inside: the loss comes back as a device scalar (Loss.forward_array), read by
  the caller when it wants it.
- No cuBLAS: CuPy refuses cuBLAS calls during a capture, so while capturing, the layers' GEMMs
  (fastnn._backend.matmul: Linear, the LSTM layer) run fastnn's tiled GEMM kernel (cuda/gemm.cu).
  Code that calls cupy.matmul itself (MultiHeadAttention) cannot be captured.

    step = CudaGraphStep(model, nn.SoftmaxCrossEntropyLoss(), optimizer)
    for x, y in loader:                        # CuPy arrays (DataLoader(device="cuda"))
        loss, correct = step(x, y)             # 0-d device arrays; float(loss) waits for the GPU

The first `warmup` calls run eagerly on the capture stream (so lazily created state -- optimizer
moments, cuBLAS handles, compiled kernels -- exists before capture; fastnn's GEMM kernel, which only
the capture runs, is launched once just before it); the next call captures, and every call launches
the graph. Every call is one real optimizer step on its batch, warm-up ones included.
"""
import operator

from .. import _backend, nn, optim
from ..optim.clip import clip_grad_norm_on_device
from .trainer import _generators


class CudaGraphStep:
    """One optimizer step (zero_grad, forward, loss, backward, optional global-norm clipping, update)
    per call, replayed from a CUDA graph; see the module docstring.

    Args:
        model: a fastnn.nn.Module whose parameters are CuPy arrays (model.to("cuda")).
        loss_fn: a fastnn.nn.Loss taking (predictions, targets); its forward_array must not copy to the
            host (SoftmaxCrossEntropyLoss, MSELoss, L1Loss, HuberLoss, BCEWithLogitsLoss).
        optimizer: a fastnn.optim optimizer over the model's parameters.
        clip_grad_norm: None or the max global gradient norm (as optim.clip_grad_norm, on the device).
        accuracy: also return the number of rows whose argmax equals the integer target.
        warmup: eager steps before the capture (at least 1).

    Calling it returns (loss, correct): 0-d CuPy arrays (correct is None without accuracy). They are
    the graph's output buffers, overwritten by the next call: convert them (float(loss)) before then.
    """

    def __init__(self, model, loss_fn, optimizer, clip_grad_norm=None, accuracy=False, warmup=2):
        if not isinstance(model, nn.Module):
            raise TypeError(f"CudaGraphStep: model must be a fastnn.nn.Module, got {type(model).__name__}")
        if not isinstance(loss_fn, nn.Loss):
            raise TypeError(f"CudaGraphStep: loss_fn must be a fastnn.nn.Loss, got {type(loss_fn).__name__}")
        if not isinstance(optimizer, optim.Optimizer):
            raise TypeError(f"CudaGraphStep: optimizer must be a fastnn.optim.Optimizer, "
                            f"got {type(optimizer).__name__}")
        if isinstance(loss_fn, nn.TripletLoss):
            raise TypeError("CudaGraphStep: TripletLoss takes three inputs; the step is forward(x) -> loss(pred, y)")
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"CudaGraphStep: clip_grad_norm must be positive or None, got {clip_grad_norm}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
            raise ValueError(f"CudaGraphStep: warmup must be an int >= 1, got {warmup!r}")
        params = model.parameters()
        if not params or not all(_backend.is_cupy_array(p.data) for p in params):
            raise ValueError("CudaGraphStep: the model's parameters must be CuPy arrays; call model.to('cuda')")
        if {id(p) for p in optimizer.params} != {id(p) for p in params}:
            raise ValueError("CudaGraphStep: the optimizer must hold exactly the model's parameters")
        generators = _generators(model)
        if generators:
            raise ValueError(f"CudaGraphStep: the model draws random numbers each step ({generators[0][0]}: "
                             "Dropout's masks), which a captured graph would replay unchanged; train it with "
                             "eager steps")
        if callable(getattr(model, "reset_state", None)) and getattr(model, "carry_state", True):
            raise ValueError("CudaGraphStep: the model carries state from one batch to the next, which a "
                             "captured graph cannot follow; use carry_state=False or eager steps")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.params = params
        self._modules = list(model.modules())
        self._buffer_slots = [(m, name) for m in self._modules for name in m._buffer_names]
        self.clip_grad_norm = None if clip_grad_norm is None else float(clip_grad_norm)
        self.accuracy = bool(accuracy)
        self.warmup = warmup
        cp = _backend.cupy_module()
        self._cp = cp
        self._stream = cp.cuda.Stream(non_blocking=True)
        self._batch_ready = cp.cuda.Event(disable_timing=True)
        self._step_done = cp.cuda.Event(disable_timing=True)
        self.eager_steps = 0  # steps run eagerly (warm-up and other shapes)
        self.graph_steps = 0  # steps run by launching the graph
        self.captures = 0
        self._graph = self._pool = None
        self._release()

    def _release(self):
        if self._graph is not None:
            # A launch of the old graph may still be running: let it finish before its graph and
            # private pool go (a pool dropped while its kernels run would free memory in use).
            self._stream.synchronize()
        if self._pool is not None:
            # The capture left the loss's cache (and, had it failed midway, layer caches) pointing into
            # the private pool; with the pool gone (older CuPy frees a dropped pool's memory even while
            # arrays point into it) they must not be read again.
            self.loss_fn._cache = None
            self.model.clear_caches()
        self._graph = self._pool = self._key = self._bound = None
        self._x = self._y = self._loss = self._correct = None

    # ---- what the graph depends on ---------------------------------------------------------------
    def _bindings(self):
        """Every array the captured kernels read or write that lives on after a step, and the Python
        settings the capture baked in; a replay is valid only while these are the same."""
        # Checked before every launch, so kept cheap: the module tree is walked once, in __init__.
        opt = self.optimizer
        arrays = [getattr(m, name) for m, name in self._buffer_slots]  # batch norm's running statistics
        arrays += [p.data for p in self.params]
        arrays += [p.grad for p in self.params]
        for group in (opt.state, opt._scratch):
            for per_param in group:
                arrays += per_param.values()
        arrays += [entry[0] for entry in opt._cuda_scalars.values()]
        settings = (opt.max_norm, [m.training for m in self._modules])
        return arrays, settings

    def _still_bound(self):
        arrays, settings = self._bindings()
        old_arrays, old_settings = self._bound
        return settings == old_settings and len(arrays) == len(old_arrays) and all(map(operator.is_, arrays, old_arrays))

    # ---- the step --------------------------------------------------------------------------------
    def _body(self, x, y):
        """The device work of one step; no host transfer, so it can be captured."""
        cp = self._cp
        self.model.zero_grad()
        predictions = self.model.forward(x)
        loss = self.loss_fn.forward_array(predictions, y)
        self.model.backward(self.loss_fn.backward())
        if self.clip_grad_norm is not None:
            clip_grad_norm_on_device(self.params, self.clip_grad_norm)
        self.optimizer._apply_updates()
        correct = None
        if self.accuracy:
            correct = (cp.argmax(predictions, axis=1) == y).sum()
        return loss, correct

    def __call__(self, inputs, targets):
        cp = self._cp
        inputs, targets = cp.asarray(inputs), cp.asarray(targets)  # CuPy arrays pass through
        key = (inputs.shape, inputs.dtype, targets.shape, targets.dtype)
        caller = cp.cuda.get_current_stream()
        self._stream.wait_event(caller.record(self._batch_ready))  # the batch (and anything before) is ready
        with self._stream:
            if self._graph is not None and key == self._key and not self._still_bound():
                self._release()  # an array was replaced (load_state_dict) or a setting changed
            if self._graph is None and self.eager_steps >= self.warmup:
                self._capture(inputs, targets, key)
            if self._graph is not None and key == self._key:
                _backend.cupy_copy_into(self._x, inputs)  # byte-wise when the caller's batch is misaligned
                _backend.cupy_copy_into(self._y, targets)
                self.optimizer._begin_step()
                self._graph.launch(self._stream)
                self.graph_steps += 1
                loss, correct = self._loss, self._correct
            else:
                self.optimizer._begin_step()
                loss, correct = self._body(inputs, targets)
                self.eager_steps += 1
        caller.wait_event(self._stream.record(self._step_done))  # later work on the caller's stream sees the update
        return loss, correct

    def _capture(self, inputs, targets, key):
        cp = self._cp
        self._key = key
        self._x = cp.empty_like(inputs)
        self._y = cp.empty_like(targets)
        self._pool = cp.cuda.MemoryPool()
        self.optimizer._ensure_state()  # state created inside the capture would be re-zeroed by every replay
        # fastnn's GEMM kernel runs only in the capture: one tiny eager launch loads it first (lazy loading).
        _backend.load_graph_gemm({p.data.dtype for p in self.params} | {inputs.dtype})
        with cp.cuda.using_allocator(self._pool.malloc):
            self._stream.begin_capture()
            try:
                with _backend.capturing_cuda_graph():  # CuPy refuses cuBLAS in a capture: our GEMM instead
                    self._loss, self._correct = self._body(self._x, self._y)
            except Exception as e:
                try:
                    self._stream.end_capture()
                except Exception:  # the capture is invalid anyway; report what broke it
                    pass
                self._release()
                raise RuntimeError(
                    f"CudaGraphStep: this step cannot be captured as a CUDA graph: {e}. Something in the model "
                    "or the loss waits for the GPU or copies to or from the host during the step (a loss whose "
                    "forward_array reads values on the host, say); train it with eager steps") from e
            self._graph = self._stream.end_capture()
        self._bound = self._bindings()
        self.captures += 1
