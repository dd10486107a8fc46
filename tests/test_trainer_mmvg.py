"""MMVG under the transformers Trainer: token caching, the collator, L_t / p_t logging, completion evaluation,
baselines, and the stage-2 training command (`training_runs.train_mmvg`, examples/run_mmvg.py) end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoProcessor

from transformers_mmvg import MMVGForVideoCompletion, MMVGProcessor
from transformers_mmvg.data.textshapes import write_textshapes
from transformers_mmvg.data.video_folder import load_video_folder
from transformers_mmvg.training_runs import train_mmvg
from transformers_mmvg.evaluation import (
    copy_frame_baseline,
    evaluate_completion,
    linear_blend_baseline,
    results_table,
    score_clips,
)
from transformers_mmvg.masking import given_mask_from_indices
from transformers_mmvg.trainer_mmvg import MMVGDataCollator, MMVGTrainer, cache_video_tokens

TINY_MMVG = dict(
    hidden_size=32, num_attention_heads=2, intermediate_size=64, num_encoder_layers=1, num_decoder_layers=2,
    text_embedding_size=8,
)


@pytest.fixture(scope="module")
def textshapes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("textshapes")
    write_textshapes(folder, num_clips=8, seed=3, num_workers=1)
    return load_video_folder(folder, num_frames=8, resolution=64)



def test_a_training_step_updates_p_t_by_the_rule_from_its_own_losses(tmp_path, tvq_dir):
    from transformers import TrainingArguments

    model = MMVGForVideoCompletion.from_tvq(str(tvq_dir), mask_probability_alpha=0.5, **TINY_MMVG).train()
    trainer = MMVGTrainer(model=model, args=TrainingArguments(str(tmp_path), use_cpu=True, report_to="none"))
    inputs = {"input_ids": torch.tensor([[49406, 320, 49407]] * 8),
              "video_token_ids": torch.randint(0, 32, (8, 8, 4, 4), generator=torch.Generator().manual_seed(0))}
    before = model.mask_probabilities.clone()
    torch.manual_seed(0)
    _, output = trainer.compute_loss(model, inputs, return_outputs=True)
    valid = output.frame_token_counts > 0
    assert valid.sum() >= 2
    losses, probabilities = output.frame_losses[valid].double(), before[valid].double()
    expected = before.clone().double()
    expected[valid] = probabilities + 0.5 * (losses / losses.sum() * probabilities.sum() - probabilities)
    low, high = model.config.mask_probability_range
    torch.testing.assert_close(model.mask_probabilities.double(), expected.clamp(low, high), rtol=0, atol=1e-6)
    model.eval()  # evaluation draws from a seeded generator and leaves p_t alone
    trainer._eval_batch_index = 0
    first = trainer.compute_loss(model, inputs)
    trainer._eval_batch_index = 0
    assert trainer.compute_loss(model, inputs) == first
    torch.testing.assert_close(model.mask_probabilities.double(), expected.clamp(low, high), rtol=0, atol=1e-6)


def test_cached_tokens_match_the_models_own_tokenization(textshapes, tvq_dir):
    model = MMVGForVideoCompletion.from_tvq(str(tvq_dir), **TINY_MMVG)
    processor = MMVGProcessor()
    cached = cache_video_tokens(textshapes, model, processor, batch_size=3)
    assert "frames" not in cached.column_names and len(cached) == 8
    pixels = processor.video_processor(videos=list(textshapes[:8]["frames"]), return_tensors="pt",
                                       do_sample_frames=False)["pixel_values_videos"]
    expected = model.tokenize_video(pixels)
    assert torch.equal(torch.tensor(cached["video_token_ids"]), expected)
    batch = MMVGDataCollator(processor)([cached[0], cached[1]])
    assert torch.equal(batch["video_token_ids"], expected[:2])
    assert batch["input_ids"][0, 0].item() == 49406
    on_the_fly = MMVGDataCollator(processor)([textshapes[0], textshapes[1]])
    assert torch.equal(on_the_fly["pixel_values_videos"], pixels[:2])


def test_baselines():
    frames = torch.arange(5, dtype=torch.float32).view(1, 5, 1, 1, 1).expand(1, 5, 1, 2, 2) * 10
    given = given_mask_from_indices([0, 4], 5)[None]
    copied = copy_frame_baseline(frames, given)[0, :, 0, 0, 0].tolist()
    assert copied == [0, 0, 0, 40, 40]  # nearest given frame; the earlier one on a tie
    blended = linear_blend_baseline(frames, given)[0, :, 0, 0, 0].tolist()
    assert blended == [0, 10, 20, 30, 40]
    prediction = copy_frame_baseline(frames, given_mask_from_indices([1], 5)[None])[0, :, 0, 0, 0].tolist()
    assert prediction == [10] * 5


def test_scores_of_the_true_clips_and_of_frozen_frames(textshapes):
    rows = [textshapes[index] for index in range(8)]
    truth = np.stack([row["frames"].permute(0, 2, 3, 1).numpy() for row in rows])
    perfect = score_clips(truth, rows, "textshapes-64x8")
    assert perfect["caption_following"] == 1.0 and perfect["centroid_error"] == 0.0
    assert perfect["psnr"] == 100.0 and perfect["ssim"] == pytest.approx(1.0)
    frozen = np.repeat(truth[:, :1], 8, axis=1)
    assert score_clips(frozen, rows, "textshapes-64x8")["caption_following"] == 0.0


def test_evaluate_completion_reports_every_task_and_method(textshapes, tvq_dir):
    model = MMVGForVideoCompletion.from_tvq(str(tvq_dir), **TINY_MMVG).eval()
    rows = [textshapes[index] for index in range(8)]
    results = evaluate_completion(
        model, MMVGProcessor(), rows, methods=("mmvg", "mmvg_empty_text", "copy_frame", "linear_blend"),
        batch_size=4, num_inference_steps=2,
    )
    assert set(results) == {"prediction", "rewind", "infilling"}
    assert set(results["prediction"]) == {"mmvg", "mmvg_empty_text", "copy_frame"}
    assert set(results["infilling"]) == {"mmvg", "mmvg_empty_text", "copy_frame", "linear_blend"}
    two_segments = sum(len(row["directions"]) == 2 for row in rows)
    assert results["infilling"]["mmvg"]["num_clips"] == two_segments
    assert results["prediction"]["copy_frame"]["caption_following"] == 0.0  # a frozen clip never moves
    assert "| prediction | mmvg | 8 |" in results_table(results)
    with pytest.raises(ValueError, match="Unknown methods"):
        evaluate_completion(model, MMVGProcessor(), rows, methods=("oracle",))


def test_run_mmvg_script_end_to_end(tmp_path, tvq_dir):
    output_dir = tmp_path / "mmvg"
    metrics = train_mmvg(
        ["--tvq_path", str(tvq_dir), "--output_dir", str(output_dir), "--num_train_clips", "8",
         "--num_eval_clips", "4", "--max_steps", "3", "--logging_steps", "1", "--per_device_train_batch_size", "4",
         "--num_completion_eval_clips", "4", "--eval_num_inference_steps", "2", "--disable_tqdm", "True",
         "--save_strategy", "no", "--config_overrides", json.dumps(TINY_MMVG)]
    )  # fmt: skip
    assert metrics["train_steps"] == 3 and "eval_loss" in metrics
    # the output folder is a complete checkpoint folder: everything the committed one holds
    committed = Path(__file__).resolve().parent.parent / "checkpoints" / "mmvg-textshapes-64x8"
    assert {path.name for path in committed.iterdir()} <= {path.name for path in output_dir.iterdir()}
    assert json.loads((output_dir / "training_data.json").read_text())["num_clips"] == 8
    logs = [json.loads(line) for line in (output_dir / "train_log.jsonl").read_text().splitlines()]
    assert any("frame_loss_0" in entry and "mask_probability_7" in entry for entry in logs)
    model = AutoModel.from_pretrained(output_dir)
    processor = AutoProcessor.from_pretrained(output_dir)
    assert isinstance(model, MMVGForVideoCompletion) and isinstance(processor, MMVGProcessor)
    assert model.config.hidden_size == 32
    # the reported caption following is that of the saved model on the 4 held-out clips, with its sample size
    eval_clips = load_video_folder(output_dir / "data" / "eval", num_frames=8, resolution=64)
    again = evaluate_completion(model, processor, [eval_clips[index] for index in range(4)],
                                num_inference_steps=2, temperature=0.0)
    for task in ("prediction", "rewind", "infilling"):
        assert metrics[f"eval_{task}_caption_following"] == again[task]["mmvg"]["caption_following"], task
        assert metrics[f"eval_{task}_num_clips"] == again[task]["mmvg"]["num_clips"], task
        assert logs[-1][f"eval_{task}_num_clips"] == again[task]["mmvg"]["num_clips"], task
    assert metrics["eval_prediction_num_clips"] == 4
