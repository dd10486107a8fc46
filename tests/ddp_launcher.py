"""Runs a training command under `torchrun` or `accelerate launch` and records what every process ended with.

    torchrun --nproc_per_node 2 tests/ddp_launcher.py {tvq,mmvg} --output_dir DIR --ddp_backend gloo ...

The arguments after the stage name go to `training_runs.train_tvq` / `train_mmvg` (the functions behind
`examples/run_tvq.py` / `examples/run_mmvg.py`) unchanged. When training
ends, each process writes its model's `state_dict()` (parameters and buffers: the T-VQ codebook and its usage
counters, MMVG's p_t `mask_probabilities`) to `DIR/rank<process index>.safetensors`, so a test can check that the
processes stayed identical.
"""

import sys
from pathlib import Path

from safetensors.torch import save_file
from transformers import TrainerCallback

from transformers_mmvg.training_runs import train_mmvg, train_tvq


class SaveStateDictPerRank(TrainerCallback):
    """At the end of training, write this process's model state dict to `<output_dir>/rank<index>.safetensors`."""

    def on_train_end(self, args, state, control, model=None, **kwargs):
        tensors = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in model.state_dict().items()}
        save_file(tensors, str(Path(args.output_dir) / f"rank{args.process_index}.safetensors"))


def main() -> None:
    stage, argv = sys.argv[1], sys.argv[2:]
    trainers = {"tvq": train_tvq, "mmvg": train_mmvg}
    if stage not in trainers:
        raise SystemExit(f"usage: ddp_launcher.py {{tvq,mmvg}} ARGS... (got {stage!r})")
    trainers[stage](argv, callbacks=[SaveStateDictPerRank()])


if __name__ == "__main__":
    main()
