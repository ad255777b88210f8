"""Rewrites CUDA kernel launches for host emulation: kernel<Ts><<<grid, block, smem, stream>>>(args);
becomes emulate_launch(grid, block, smem, stream, [&] { kernel<Ts>(args); }); and emu.h is included
first. Usage: python3 transform.py in.cu out.cpp"""
import re
import sys

src = open(sys.argv[1]).read()
pat = re.compile(r'([\w:]+(?:<[^;{}]*?>)?)\s*<<<(.*?)>>>\s*\((.*?)\);', re.S)
out, n = pat.subn(lambda m: f'emulate_launch({m.group(2)}, [&] {{ {m.group(1)}({m.group(3)}); }});', src)
if n == 0 or "<<<" in out:
    sys.exit(f"transform.py: {sys.argv[1]}: {n} launches rewritten, "
             f"{out.count('<<<')} left that the pattern does not match")
with open(sys.argv[2], "w") as f:
    f.write('#include "emu.h"\n#line 1 "' + sys.argv[1] + '"\n' + out)
print(sys.argv[1], n, "launches")
