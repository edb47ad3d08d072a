"""One rank of tests/test_ddp.py: ``torchrun --nproc-per-node 2 tests/ddp_worker.py OUT [CASE ...]``.

Trains every case of tests/ddp_cases.py data-parallel (gloo) and saves this rank's final tensors
to ``OUT/rank<r>.pt``.
"""

import sys
from pathlib import Path

import torch
from ddp_cases import CASES, train

from scalarize.train import distributed

if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    cases = sys.argv[2:] or list(CASES)
    context = distributed.init("gloo", "cpu")
    results = {case: train(case, context) for case in cases}
    torch.save(results, out / f"rank{context.rank}.pt")
    distributed.shutdown()
