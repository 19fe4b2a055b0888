"""Re-derive a search's network at its switch with the current code, and leave a checkpoint that
`upscale search ... --resume` continues from there (the supernet, the architecture and their optimisers stop
changing at the switch, so the final checkpoint holds them as they were then).

    python benchmarks/rewind_to_switch.py runs/search-x2-v5 runs/search-x2-v5b

Used once, when the budget fit changed after the x2 search v5 had switched (CHANGELOG); a new search needs
nothing of the kind.
"""

import sys
from pathlib import Path

import torch

from trinas.checkpoint import load_checkpoint, save_checkpoint
from trinas.search_config import SearchConfig, progress_of, radius_at
from trinas.search_losses import budgets_of
from trinas.search_state import new_run, restore, state_of, switch_to_final

source, target = Path(sys.argv[1]), Path(sys.argv[2])
state = load_checkpoint(source / "search-checkpoint.pt")
first_train = next(r for r in state["history"] if r["phase"] == "train")
for key in ("genotype", "net", "net_opt"):
    state.pop(key)
state["history"] = [r for r in state["history"] if r["phase"] == "search"]
state["step"], state["elapsed_s"] = first_train["step"], first_train["seconds"]
state["pending"] = {"loss": [], "arch_loss": []}
config = SearchConfig.from_dict(state["config"])
device = torch.device("cpu")
run = new_run(config, device)
restore(run, state, device)
weights = run.arch.weights(radius_at(config, progress_of(config, run.step, run.elapsed_s))).detach()
assert weights.one_hot()
switch_to_final(run, weights, [(b.cost.of, b.limit) for b in budgets_of(config)])
print(f"rewound to step {run.step}: {run.net.genotype.describe()}")
target.mkdir(parents=True)
save_checkpoint(state_of(run), target / "search-checkpoint.pt")
