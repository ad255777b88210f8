"""Training: the fit/evaluate loop, its history, and the runs behind `fastnn train` and examples/.

    from fastnn.training import Trainer, seed_everything
    seed_everything(0)
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters()),
                      patience=3, checkpoint_path="run/checkpoint.npz")
    history = trainer.fit(train_loader, val_loader, epochs=10)
    history.save_json("run/history.json"); history.plot("run/history.png")

Modules: trainer (Trainer, NonFiniteLossError, seed_everything), history (History),
models (lenet5, CharLSTM), recipes (train_lenet5, train_charlstm, RunError), cuda_graph (CudaGraphStep: a
training step captured as one CUDA graph).
"""
from .._io import CheckpointError
from .cuda_graph import CudaGraphStep
from .history import History
from .models import CharLSTM, count_parameters, lenet5
from .recipes import NoGPUError, RunError, train_charlstm, train_lenet5
from .trainer import NonFiniteLossError, Trainer, classification_accuracy, seed_everything

__all__ = [
    "CheckpointError",
    "CharLSTM",
    "CudaGraphStep",
    "History",
    "NoGPUError",
    "NonFiniteLossError",
    "RunError",
    "Trainer",
    "classification_accuracy",
    "count_parameters",
    "lenet5",
    "seed_everything",
    "train_charlstm",
    "train_lenet5",
]
