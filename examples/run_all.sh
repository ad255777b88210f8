#!/usr/bin/env bash
# Runs every example with its defaults, one after another, and prints what each printed, with the
# machine (fastnn info, the CPU model) and the commit first: the source of README's examples table.
#
#   bash examples/run_all.sh > benchmarks/results/examples-MACHINE-DATE.txt
#
# Run it after `pip install .`, from any folder. resnet_fashion_mnist.py needs Fashion-MNIST
# (apt-get install dataset-fashion-mnist, or FASTNN_DATA=DIR holding DIR/fashion-mnist); without it
# that example prints where it looked and the others still run. About a minute on 2 cores (Zen 3).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
cd /  # import the installed fastnn, not the checkout's source tree

echo "# examples/run_all.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)"
cpu_field() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//'; }
echo "# CPU: $(cpu_field 'model name'), family $(cpu_field 'cpu family') model $(cpu_field model) ($(nproc) cores)"
"$python" -m fastnn info | sed 's/^/# /'
failed=()
for name in lenet5_mnist char_lstm xor_mlp linear_logistic_regression huber_vs_mse siamese_mnist \
            resnet_fashion_mnist hyperparameter_search; do
    echo
    echo "## $name"
    start=$(date +%s)
    "$python" "$here/$name.py" --help >/dev/null  # (fails loudly if the script cannot even start)
    if [ "$name" = lenet5_mnist ] || [ "$name" = char_lstm ] || [ "$name" = resnet_fashion_mnist ]; then
        "$python" "$here/$name.py" --no-progress
    else
        "$python" "$here/$name.py"
    fi
    rc=$?
    echo "## $name: exit $rc, $(( $(date +%s) - start )) s"
    [ $rc -eq 0 ] || failed+=("$name")
done
echo
echo "# failed: ${failed[*]:-none}"
