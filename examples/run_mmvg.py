#!/usr/bin/env python
"""Stage 2 of MMVG: train the multimodal masked video generator on a frozen T-VQ with the transformers Trainer.

    python examples/run_mmvg.py --tvq_path outputs/tvq --output_dir outputs/mmvg          # TextShapes
    python examples/run_mmvg.py --tvq_path outputs/tvq --train_dir videos/train --eval_dir videos/test \
        --num_frames 8 --resolution 64 --output_dir outputs/mmvg-mine

Without `--train_dir` it generates TextShapes (`--preset`, `--num_train_clips`, `--num_eval_clips`) under
`<output_dir>/data` (or reads `--data_dir` if it holds `train/` and `eval/`). The frozen T-VQ's tokens of every clip
are computed once (`--cache_tokens`, default) or on the fly. Logs hold the loss L_M, every per-frame L_t and every
p_t. Evaluation (`--eval_strategy steps`) reports the held-out loss and, on TextShapes, caption following per task.
The model and the processor are saved together in `--output_dir` (`pipeline("text-guided-video-completion",
model=output_dir)` loads them), with `eval_results.json`, `train_log.jsonl` (every logged step and evaluation),
`training_data.json` (which clips it was trained on), `training_args.json` (the `TrainingArguments`, which the model
card reads) and `samples.png`: with `--save_strategy no` and `--data_dir` elsewhere, that folder is a complete
checkpoint folder.
`--resume_from_checkpoint` resumes (optimizer, scheduler, RNG and p_t; `True`: from the latest checkpoint in
`--output_dir`). A non-empty `--output_dir` is refused unless `--resume_from_checkpoint` or `--overwrite_output_dir`
is given; every checkpoint folder is complete or absent. All `TrainingArguments` apply.

This script is the command line of `transformers_mmvg.training_runs.train_mmvg`, where the training run lives
(the demo's `--from-scratch` and `benchmarks/run.py` call that function with the same arguments).
"""

from transformers_mmvg.training_runs import train_mmvg

if __name__ == "__main__":
    train_mmvg()
