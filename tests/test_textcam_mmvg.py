"""Stage 2 on TextCam (issue 17): the completion evaluation scores TextCam clips by their camera motion, the camera
warp baseline, and `run_mmvg.py --preset textcam-64x8` end to end with tiny models."""

import json

import numpy as np
import pytest
import torch

from transformers_mmvg import MMVGForVideoCompletion, MMVGVideoProcessor
from transformers_mmvg.data.textcam import write_textcam
from transformers_mmvg.data.video_folder import load_video_folder
from transformers_mmvg import MMVGProcessor, TVQConfig, TVQModel
from transformers_mmvg.evaluation import (
    camera_warp_baseline,
    counterfactual_rows,
    evaluate_completion,
    results_table,
    score_clips,
    step_agreement_table,
    tvq_round_trip,
)
from transformers_mmvg.masking import given_mask_from_indices, task_given_indices
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
    # per camera motion, the share of its steps read as it: none for a still camera, all for the warp (from frame 0)
    motions = {"left", "right", "up", "in", "out"}  # these 12 clips have no pan down
    assert {motion for row in held_out_rows for motion in row["motions"]} == motions
    assert results["prediction"]["copy_frame"]["step_agreement"] == dict.fromkeys(motions, 0.0)
    assert results["prediction"]["camera_warp"]["step_agreement"] == dict.fromkeys(motions, 1.0)
    table = step_agreement_table(results).splitlines()
    assert table[0] == "| task | method | left steps | right steps | up steps | down steps | in steps | out steps |"
    assert "| prediction | camera_warp | 100% | 100% | 100% | - | 100% | 100% |" in table


def test_tvq_ceiling_is_the_true_clip_through_the_models_tvq_with_the_given_frames_kept(held_out_rows):
    torch.manual_seed(0)
    tvq = TVQModel(TVQConfig(image_size=64, channel_multipliers=[1, 1, 2, 4], **TINY_TVQ)).eval()
    model = MMVGForVideoCompletion.from_tvq(tvq, **TINY_MMVG).eval()
    processor = MMVGProcessor(video_processor=MMVGVideoProcessor(photo_crop_fraction=0.5))
    results = evaluate_completion(model, processor, held_out_rows, tasks=("prediction", "infilling"),
                                  methods=("tvq_ceiling",))  # fmt: skip
    clips = np.stack([row["frames"].numpy() for row in held_out_rows])
    token_ids, decoded = tvq_round_trip(tvq, processor.video_processor, clips, batch_size=5)
    assert token_ids.shape == (12, 8, 8, 8) and decoded.shape == (12, 8, 64, 64, 3) and decoded.dtype == np.uint8
    for task in ("prediction", "infilling"):
        rows = [row for row in held_out_rows if task != "infilling" or len(row["motions"]) == 2]
        reconstructed = np.stack([decoded[held_out_rows.index(row)] for row in rows])
        given = task_given_indices(task, 8)
        expected = score_clips(reconstructed, rows, "textcam-64x8", given)
        assert results[task]["tvq_ceiling"]["psnr"] == pytest.approx(expected["psnr"], abs=1e-4)
        assert results[task]["tvq_ceiling"]["ssim"] == pytest.approx(expected["ssim"], abs=1e-5)
        assert results[task]["tvq_ceiling"]["num_clips"] == len(rows)


def test_textcam_counterfactual_captions_reverse_or_swap_the_motions(held_out_rows):
    reversed_rows = counterfactual_rows(held_out_rows, "prediction", "textcam-64x8")
    assert len(reversed_rows) == 12  # a camera can always move on: no clip is left out
    first = held_out_rows[0]
    assert reversed_rows[0]["motions"] == [{"left": "right", "right": "left", "up": "down", "down": "up", "in": "out",
                                            "out": "in"}[motion] for motion in first["motions"]]  # fmt: skip
    assert reversed_rows[0]["text"].startswith("the camera ") and reversed_rows[0]["text"] != first["text"]
    swapped = counterfactual_rows(held_out_rows, "infilling", "textcam-64x8")
    assert [row["motions"] for row in swapped] == [row["motions"][::-1] for row in held_out_rows
                                                   if len(row["motions"]) == 2]  # fmt: skip
    # the camera warp reads the caption: given the new caption it follows the new motion, not the true one
    frames = torch.stack([row["frames"] for row in reversed_rows])
    given = given_mask_from_indices([0], 8)[None].expand(len(reversed_rows), -1)
    warped = camera_warp_baseline(frames, given, reversed_rows, "textcam-64x8").permute(0, 1, 3, 4, 2).numpy()
    assert score_clips(warped, reversed_rows, "textcam-64x8")["caption_following"] == 1.0
    assert score_clips(warped, held_out_rows, "textcam-64x8")["caption_following"] == 0.0


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
    # per camera motion, the share of its steps read as it, one figure each (the 4 clips' motions, no dict)
    step_keys = {key for key in metrics if key.startswith("eval_prediction_") and key.endswith("_steps")}
    assert step_keys and all(isinstance(metrics[key], float) for key in step_keys)
    assert {key.split("_")[2] for key in step_keys} <= {"left", "right", "up", "down", "in", "out"}
    record = json.loads((mmvg_dir / "training_data.json").read_text())
    assert record["dataset"] == "textcam" and record["num_clips"] == 6
    assert MMVGVideoProcessor.from_pretrained(mmvg_dir).photo_crop_fraction == 0.5  # W / P of textcam-64x8
    model = MMVGForVideoCompletion.from_pretrained(mmvg_dir)
    assert model.config.tokens_per_frame == 64 and model.config.previous_frame_radius == 1
    assert (mmvg_dir / "samples.png").is_file()
