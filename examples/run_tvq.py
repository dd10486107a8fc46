#!/usr/bin/env python
"""Stage 1 of MMVG: train T-VQ, the temporal-aware VQGAN, with the transformers Trainer.

    python examples/run_tvq.py --output_dir outputs/tvq                       # TextShapes, default config
    python examples/run_tvq.py --train_dir my_videos/train --eval_dir my_videos/test \
        --num_frames 8 --resolution 64 --output_dir outputs/tvq-mine

Without `--train_dir` it generates TextShapes (`--preset`, `--num_train_clips`, `--num_eval_clips`)
under `<output_dir>/data`. Any folder of videos with a `metadata.jsonl`/`metadata.csv` works
(`transformers_mmvg.data.video_folder`). The model (`AutoModel.from_pretrained(output_dir)` reloads
it), its video processor, `eval_results.json` (PSNR, SSIM, codebook usage, temporal-order
accuracy on the held-out split), `train_log.jsonl` (every logged step), `training_data.json` (which
clips it was trained on) and `reconstructions.png` end up in `--output_dir`: with `--save_strategy no`
and the data elsewhere, that folder is a complete checkpoint folder.
`--resume_from_checkpoint` resumes, discriminator included (`True`: from the latest checkpoint in `--output_dir`).
A non-empty `--output_dir` is refused unless `--resume_from_checkpoint` or `--overwrite_output_dir` is given; every
checkpoint folder is complete or absent. All `TrainingArguments` apply.

This script is the command line of `transformers_mmvg.training_runs.train_tvq`, where the training run lives
(the demo's `--from-scratch` and `benchmarks/run.py` call that function with the same arguments).
"""

from transformers_mmvg.training_runs import train_tvq

if __name__ == "__main__":
    train_tvq()
