"""Stage 2 on TextCam (issue 17): the completion evaluation scores TextCam clips by their camera motion, the camera
warp baseline, and `run_mmvg.py --preset textcam-64x8` end to end with tiny models."""

import json

import numpy as np
import pytest
import torch

from transformers_mmvg import MMVGForVideoCompletion, MMVGVideoProcessor
from transformers_mmvg.data.textcam import write_textcam
from transformers_mmvg.data.video_folder import load_video_folder
from transformers_mmvg.evaluation import camera_warp_baseline, evaluate_completion, results_table
from transformers_mmvg.masking import given_mask_from_indices
from transformers_mmvg.training_runs import train_mmvg, train_tvq

TINY_TVQ = {"hidden_channels": 8, "latent_channels": 16, "codebook_size": 32, "codebook_dim": 8,
            "temporal_hidden_size": 16, "use_perceptual_loss": False}  # fmt: skip
TINY_MMVG = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, num_encoder_layers=1,
                 num_decoder_layers=2, text_embedding_size=8, previous_frame_radius=1)  # fmt: skip


@pytest.fixture(scope="module")
def held_out_rows(tmp_path_factory):
    folder = write_textcam(tmp_path_factory.mktemp("textcam") / "held_out", num_clips=12, seed=1,
                           split="held_out", num_workers=1)  # fmt: skip
    dataset = load_video_folder(folder, num_frames=8, resolution=64)
    return [dataset[index] for index in range(len(dataset))]


def test_camera_warp_moves_the_given_frame_as_the_caption_says(held_out_rows):
    frames = torch.stack([row["frames"] for row in held_out_rows])
    given = given_mask_from_indices([0], 8)[None].expand(len(held_out_rows), -1)
    warped = camera_warp_baseline(frames, given, held_out_rows, "textcam-64x8")
    assert torch.equal(warped[:, 0], frames[:, 0])  # the given frame comes back as it is
    # a pan right by V = 16 photo px is 8 frame px: frame 1's left 56 columns are frame 0's right 56 columns
    pans_right = [index for index, row in enumerate(held_out_rows) if row["motions"][0] == "right"]
    for index in pans_right:
        assert torch.equal(warped[index, 1, :, :, :56], frames[index, 0, :, :, 8:])


def test_evaluation_scores_textcam_clips_by_their_camera_motion(held_out_rows):
    results = evaluate_completion(None, None, held_out_rows, methods=("copy_frame", "linear_blend", "camera_warp"))
    for task in ("prediction", "rewind", "infilling"):
        assert results[task]["copy_frame"]["caption_following"] == 0.0  # a still camera follows no caption
        assert results[task]["camera_warp"]["caption_following"] == 1.0  # it moves as the caption says
        assert np.isnan(results[task]["copy_frame"]["centroid_error"])  # no objects to track on TextCam
        assert results[task]["camera_warp"]["psnr"] > results[task]["copy_frame"]["psnr"]
    two_motions = sum(len(row["motions"]) == 2 for row in held_out_rows)
    assert results["infilling"]["camera_warp"]["num_clips"] == two_motions
    assert "linear_blend" not in results["prediction"]
    assert "| prediction | camera_warp | 12 | 100.0% | - |" in results_table(results)


def test_run_mmvg_on_textcam_end_to_end(tmp_path):
    tvq_dir, mmvg_dir, data_dir = tmp_path / "tvq", tmp_path / "mmvg", tmp_path / "data"
    common = ["--preset", "textcam-64x8", "--num_train_clips", "6", "--num_eval_clips", "4", "--max_steps", "2",
              "--disable_tqdm", "True", "--save_strategy", "no"]  # fmt: skip
    train_tvq(["--output_dir", str(tvq_dir), "--config_preset", "textcam-64x8", "--config_overrides",
               json.dumps(TINY_TVQ), "--per_device_train_batch_size", "3"] + common)  # fmt: skip
    metrics = train_mmvg(
        ["--tvq_path", str(tvq_dir), "--output_dir", str(mmvg_dir), "--data_dir", str(data_dir),
         "--per_device_train_batch_size", "3", "--num_completion_eval_clips", "4", "--eval_num_inference_steps", "2",
         "--config_overrides", json.dumps(TINY_MMVG)] + common
    )  # fmt: skip
    assert metrics["train_steps"] == 2
    assert 0 <= metrics["eval_prediction_caption_following"] <= 1
    record = json.loads((mmvg_dir / "training_data.json").read_text())
    assert record["dataset"] == "textcam" and record["num_clips"] == 6
    assert MMVGVideoProcessor.from_pretrained(mmvg_dir).photo_crop_fraction == 0.5  # W / P of textcam-64x8
    model = MMVGForVideoCompletion.from_pretrained(mmvg_dir)
    assert model.config.tokens_per_frame == 64 and model.config.previous_frame_radius == 1
    assert (mmvg_dir / "samples.png").is_file()
