"""Character-level LSTM language model on Shakespeare (Hamlet, Macbeth, Julius Caesar), the same run
as `fastnn train charlstm`.

    python examples/char_lstm.py                         # 3 epochs, hidden 256, then 300 sampled characters
    python examples/char_lstm.py --temperature 0.5 --epochs 5 --out runs/charlstm

Prints validation loss and perplexity exp(loss) per epoch, then text sampled at the given temperature
(p_k proportional to exp(s_k / temperature)). All options: --help.
"""
import sys

from fastnn.cli import train_script

if __name__ == "__main__":
    sys.exit(train_script("charlstm", sys.argv[1:],
                          description="Character LSTM on Shakespeare, as `fastnn train charlstm`"))
