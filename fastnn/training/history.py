"""Per-epoch training history: rows of numbers, saved as JSON and plotted to PNG.

    history = trainer.fit(...)
    history["val_accuracy"]          # [0.97, 0.98, ...], one value per epoch
    history.save_json("run/history.json")
    history.plot("run/history.png")  # needs matplotlib: pip install 'fastnn[plot]'
"""
import json
import os

from .._io import atomic_write


class History:
    """A list of per-epoch dicts (epoch, lr, train_loss, val_loss, ...) with column access."""

    def __init__(self, rows=None):
        self.rows = [dict(r) for r in rows] if rows is not None else []

    def append(self, row):
        self.rows.append(dict(row))

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        """history["val_loss"]: the column over epochs (None where an epoch lacks it)."""
        if not any(key in r for r in self.rows):
            raise KeyError(f"history has no column {key!r}; columns: {self.columns()}")
        return [r.get(key) for r in self.rows]

    def columns(self):
        seen = []
        for r in self.rows:
            seen.extend(k for k in r if k not in seen)
        return seen

    def to_json(self):
        return json.dumps({"epochs": self.rows}, indent=2)

    def save_json(self, path):
        """Writes {"epochs": [row, ...]} to `path` (atomic: temporary file, then rename)."""
        text = self.to_json()
        atomic_write(path, lambda f: f.write(text), binary=False)

    @classmethod
    def load_json(cls, path):
        with open(os.fspath(path)) as f:
            try:
                data = json.load(f)
            except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
                raise ValueError(f"{path}: not a fastnn history (not valid JSON: {e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("epochs"), list):
            raise ValueError(f"{path}: expected a JSON object with an 'epochs' list")
        return cls(data["epochs"])

    def plot(self, path):
        """Loss (train and validation) and, when recorded, accuracy against the epoch, as a PNG."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from matplotlib.ticker import MaxNLocator
        except ImportError as e:
            raise ImportError("plotting the history needs matplotlib: pip install 'fastnn[plot]' "
                              "(or pip install matplotlib)") from e
        if not self.rows:
            raise ValueError("History.plot: the history is empty")
        columns = self.columns()
        panels = [("loss", [c for c in ("train_loss", "val_loss") if c in columns])]
        accuracy = [c for c in ("train_accuracy", "val_accuracy") if c in columns]
        if accuracy:
            panels.append(("accuracy", accuracy))
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
        epochs = self["epoch"]
        for ax, (title, names) in zip(axes[0], panels):
            for name in names:
                ax.plot(epochs, self[name], marker="o", label=name.replace("_", " "))
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(os.fspath(path), dpi=100)
        plt.close(fig)
        return path
