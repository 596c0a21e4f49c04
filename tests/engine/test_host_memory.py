"""run.host_memory: freed large blocks go back to the OS under `return` (and `auto` for a large model); freed
memory stays in the process for the next step under `reuse` (and `auto` for a small model).

Each case runs in its own process: the setting is process-wide and would change the speed of later tests.
"""

import subprocess
import sys
import textwrap

import pytest
import torch

from rlstruct.engine.host_memory import set_host_memory, weight_bytes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")

SCRIPT = textwrap.dedent("""
    import sys, torch
    from rlstruct.engine import host_memory
    def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096
    policy, min_bytes = sys.argv[1], int(sys.argv[2])
    host_memory.AUTO_MIN_WEIGHT_BYTES = min_bytes
    applied = host_memory.set_host_memory(policy, torch.nn.Linear(64, 64))
    keep = [torch.ones(1024)]
    x = torch.ones(8 << 20); del x   # a 32 MB block: by default its release raises the threshold to 32 MB
    before = rss()
    for _ in range(4):               # 16 MB activations freed between small live tensors
        y = torch.ones(4 << 20); keep.append(torch.ones(1024)); del y
    print(int(applied), (rss() - before) >> 20)
""")


def _in_a_process(script: str, policy: str, min_bytes: int) -> tuple[bool, int]:
    """(whether the policy changed the allocator, the figure the script prints), from a fresh process."""
    out = subprocess.run([sys.executable, "-c", script, policy, str(min_bytes)], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    return bool(int(out[0])), int(out[1])


def _retained(policy: str, min_bytes: int = 512 << 20) -> tuple[bool, int]:
    """MB of freed 16 MB blocks still resident."""
    return _in_a_process(SCRIPT, policy, min_bytes)


def test_return_gives_freed_blocks_back_and_keep_does_not():
    applied, retained = _retained("return")
    assert applied and retained < 4, f"{retained} MB of freed blocks still resident"
    applied, retained = _retained("keep")
    assert not applied and retained >= 12, f"the default allocator was expected to keep the freed 16 MB block, {retained} MB kept"


REFAULT = textwrap.dedent("""
    import ctypes, resource, sys, torch
    from rlstruct.engine import host_memory
    host_memory.AUTO_MIN_WEIGHT_BYTES = int(sys.argv[2])
    applied = host_memory.set_host_memory(sys.argv[1], torch.nn.Linear(64, 64))
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
    for step in range(3):  # a step's 128 MB of activations in 512 KB blocks, written, then all freed (backward)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [libc.malloc(512 << 10) for _ in range(256)]
        for block in blocks:
            ctypes.memset(block, 1, 512 << 10)
        for block in reversed(blocks):
            libc.free(block)
    print(int(applied), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)  # the third step's
""")


def _refaults(policy: str, min_bytes: int = 512 << 20) -> tuple[bool, int]:
    """Page faults of a step's activations allocated again after the previous step's were freed."""
    return _in_a_process(REFAULT, policy, min_bytes)


def test_reuse_keeps_a_freed_step_for_the_next_one_and_keep_trims_it():
    applied, faults = _refaults("reuse")
    assert applied and faults < 2_000, f"{faults} page faults: the freed 128 MB was given back and faulted in again"
    applied, faults = _refaults("keep")  # glibc's default trims the heap top: 128 MB faulted in again
    assert not applied and faults > 16_000, faults
    applied, retained = _retained("reuse")
    assert applied and retained >= 12


def test_auto_follows_the_model_size():
    applied, faults = _refaults("auto")  # a 16 KB model: reuse
    assert applied and faults < 2_000
    applied, retained = _retained("auto", min_bytes=1)  # the model counts as large: return
    assert applied and retained < 4


def test_weight_bytes_counts_tied_parameters_once():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10, bias=False))
    model[1].weight = model[0].weight
    assert weight_bytes(model) == 10 * 4 * 4
    assert set_host_memory("keep", model) is False
