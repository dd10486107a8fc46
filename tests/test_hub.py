"""The model card, the training summary of a run folder, and the one-commit upload (the Hub itself mocked)."""

import json
import re
from pathlib import Path
from unittest import mock

import huggingface_hub
import numpy as np
import PIL.Image
import pytest
import torch
from huggingface_hub import ModelCard, RepoUrl
from transformers import TrainingArguments

from transformers_mmvg import MMVGConfig, MMVGForVideoCompletion
from transformers_mmvg.hub import build_model_card, load_training_summary, push_to_hub, save_for_hub
from tiny_models import tiny_config, tiny_processor

EVAL_RESULTS = {
    "eval_loss": 2.5,
    "eval_prediction_caption_following": 0.875,
    "eval_rewind_caption_following": 0.5,
    "eval_infilling_caption_following": 0.25,
    "eval_prediction_centroid_error": 3.125,
    "eval_prediction_psnr": 21.5,
    "eval_prediction_ssim": 0.8125,
    "train_seconds": 1800.0,
    "train_steps": 3000,
}
# the weights, configs and card, and the code that loads them without the package (test_remote_code.py)
SAVED_FILES = sorted([
    "README.md", "config.json", "model.safetensors", "processor_config.json", "tokenizer.json", "tokenizer_config.json",
    "configuration_mmvg.py", "configuration_tvq.py", "decoding.py", "masking.py", "memory.py",
    "modeling_mmvg.py", "modeling_tvq.py", "pipeline_video_completion.py", "processing_mmvg.py",
    "tokenization_mmvg.py", "video_io.py", "video_processing_mmvg.py", "visualization.py",
])  # fmt: skip


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MMVGForVideoCompletion(tiny_config()).eval()


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


# ---------------------------------------------------------------- the card


def test_card_reports_sizes_results_usage_limitations_and_citation(model):
    card = build_model_card(model, EVAL_RESULTS, {"learning_rate": 5e-4, "max_steps": 3000}, repo_id="me/tiny-mmvg")
    text = str(card)
    tvq_parameters = model.tvq.num_parameters()
    assert model.num_parameters() == 457_047 and tvq_parameters == 21_895  # + 32 x 4 code vectors in the base model
    for row in [
        "| frames per clip | 6 |",
        "| resolution | 16x16 pixels |",
        "| tokens per frame | 16 (4x4) |",
        "| codebook size | 32 codes of dimension 4 |",
        "| hidden size | 32 |",
        "| attention heads | 2 |",
        "| encoder layers | 1 |",
        "| decoder layers (Video Swin) | 2 |",
        "| decoder window (frames, rows, columns) | 3 x 2 x 2 |",
        "| trainable parameters (all but the frozen T-VQ and its code vectors) | 0.44M (435,024) |",
        "| parameters with the frozen T-VQ | 0.46M (457,047) |",
        # the measured numbers, caption following as percentages
        "| prediction | 0 | 87.5% | 3.12 px | 21.50 dB | 0.812 |",
        "| rewind | 5 | 50.0% | not measured | not measured | not measured |",
        "| infilling | 0, 5 | 25.0% | not measured | not measured | not measured |",
        # the training table: arguments, then what the run recorded
        "| learning rate | 0.0005 |",
        "| max steps | 3000 |",
        "| steps run | 3000 |",
        "| training time | 1800 s (30.0 min) |",
    ]:
        assert row in text.splitlines(), row
    assert "Held-out loss (cross-entropy per visual token): 2.5000." in text
    assert 'pipe = pipeline("text-guided-video-completion", model="me/tiny-mmvg", trust_remote_code=True)' in text
    assert 'pipe("the red circle moves right then down", images=[first_frame], task="prediction")' in text
    assert "out = model.complete(" in text
    prose = " ".join(text.split())  # the template wraps its lines
    data_limit = (
        "Trained only on TextShapes (textshapes-64x8): "
        "synthetic moving shapes on black at 16x16 pixels, 6 frames."
    )
    assert data_limit in prose
    assert "A CPU-scale model (0.46M parameters)" in prose
    assert "it is not meant for real video" in prose
    assert "The frozen T-VQ was trained on TextShapes only" in prose
    assert "@inproceedings{fu2023tellme," in text
    assert "Tell Me What Happened: Unifying Text-guided Video Completion via Multimodal Masked Video Generation" in text
    assert "eprint    = {2211.12824}" in text

    assert text.startswith("---\n")
    assert card.data.license == "apache-2.0"
    assert card.data.library_name == "transformers-mmvg"
    assert card.data.model_name == "tiny-mmvg"
    assert {"mmvg", "text-guided-video-completion", "video-generation"} <= set(card.data.tags)
    assert card.data.to_dict().get("pipeline_tag") is None  # not an official pipeline tag
    # the card survives a round trip through its file
    assert ModelCard(text).data.to_dict() == card.data.to_dict()


def test_card_without_results_says_not_measured(model):
    text = str(build_model_card(model))
    assert "every figure is not measured" in text
    assert "| prediction | 0 | not measured | not measured | not measured | not measured |" in text
    assert "Held-out loss (cross-entropy per visual token): not measured." in text
    assert "Training configuration: not recorded." in text
    assert 'model="path/to/mmvg-model"' in text
    assert "%" not in text.split("## Evaluation results")[1].split("## How to use")[0]


def test_card_model_snippet_runs(model, processor, tmp_path):
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    snippet = python_blocks(str(build_model_card(model, repo_id="me/tiny-mmvg")))[1]
    namespace = {"frames": np.zeros((6, 16, 16, 3), dtype=np.uint8)}
    exec(snippet.replace("me/tiny-mmvg", str(tmp_path)), namespace)
    assert namespace["video"].shape == (1, 6, 16, 16, 3) and namespace["video"].dtype == np.uint8


def test_card_pipeline_snippet_runs(model, processor, tmp_path, monkeypatch):
    save_for_hub(model, processor, tmp_path / "model", build_model_card(model))  # what the Hub repo holds
    PIL.Image.new("RGB", (16, 16)).save(tmp_path / "first_frame.png")
    monkeypatch.chdir(tmp_path)
    snippet = python_blocks(str(build_model_card(model, repo_id="me/tiny-mmvg")))[0]
    namespace = {}
    exec(snippet.replace("me/tiny-mmvg", str(tmp_path / "model")), namespace)
    assert len(namespace["out"]["frames"]) == 6
    assert namespace["out"]["frames"][0].size == (16, 16)


def test_reference_card_is_the_default_config_rendering():
    text = (Path(__file__).parents[1] / "MODEL_CARD.md").read_text()
    marker = "<!-- rendered card -->\n"
    assert text.count(marker) == 1
    assert text.split(marker)[1] == str(build_model_card(MMVGForVideoCompletion(MMVGConfig())))


# ---------------------------------------------------------------- the training summary


def test_load_training_summary(tmp_path):
    (tmp_path / "eval_results.json").write_text(json.dumps(EVAL_RESULTS, indent=2))
    args = TrainingArguments(
        output_dir=str(tmp_path), learning_rate=5e-4, max_steps=3000, per_device_train_batch_size=32,
        lr_scheduler_type="cosine", warmup_steps=100, weight_decay=0.01, seed=7, report_to="none",
    )
    (tmp_path / "training_args.json").write_text(args.to_json_string())  # as the training commands write it

    eval_results, training_config = load_training_summary(tmp_path)
    assert eval_results == EVAL_RESULTS
    assert training_config == {
        "learning_rate": 5e-4,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 100,
        "weight_decay": 0.01,
        "per_device_train_batch_size": 32,
        "max_steps": 3000,
        "seed": 7,
    }


def test_load_training_summary_without_files(tmp_path):
    assert load_training_summary(tmp_path) == (None, None)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_training_summary(tmp_path / "missing")


# ---------------------------------------------------------------- saving and pushing


def test_push_to_hub_sends_model_processor_and_card_in_one_commit(model, processor, tmp_path):
    sent = []

    def upload_folder(self, *, repo_id, folder_path, commit_message):
        folder = Path(folder_path)  # a temporary folder: inspect it here, it is gone afterwards
        readme = (folder / "README.md").read_text()
        loaded = MMVGForVideoCompletion.from_pretrained(folder)
        sent.append(
            dict(
                repo_id=repo_id,
                commit_message=commit_message,
                files=sorted(path.name for path in folder.iterdir()),
                readme=readme,
                same_weights=all(
                    torch.equal(value, loaded.state_dict()[key]) for key, value in model.state_dict().items()
                ),
                same_keys=loaded.state_dict().keys() == model.state_dict().keys(),
            )
        )
        return "https://huggingface.co/me/tiny-mmvg/commit/0123abcd"

    create_repo = mock.Mock(return_value=RepoUrl("https://huggingface.co/me/tiny-mmvg"))
    with (
        mock.patch.object(huggingface_hub.HfApi, "create_repo", create_repo),
        mock.patch.object(huggingface_hub.HfApi, "upload_folder", upload_folder),
    ):
        result = push_to_hub(model, processor, "me/tiny-mmvg", private=True)

    assert result == "https://huggingface.co/me/tiny-mmvg/commit/0123abcd"
    create_repo.assert_called_once_with("me/tiny-mmvg", exist_ok=True, private=True)
    assert len(sent) == 1
    (upload,) = sent
    assert upload["repo_id"] == "me/tiny-mmvg"
    assert upload["commit_message"] == "Upload MMVG model"
    assert upload["files"] == SAVED_FILES
    assert upload["readme"].startswith("---\nlibrary_name: transformers-mmvg\nlicense: apache-2.0\n")
    assert 'model="me/tiny-mmvg"' in upload["readme"]
    assert upload["same_keys"] and upload["same_weights"]


def test_save_for_hub_writes_the_given_card(model, processor, tmp_path):
    card = build_model_card(model, EVAL_RESULTS, repo_id="me/tiny-mmvg")
    assert save_for_hub(model, processor, tmp_path / "out", card) == SAVED_FILES
    assert (tmp_path / "out" / "README.md").read_text() == str(card)


@pytest.mark.parametrize("repo_id", ["a/b/c", "me/bad name", "me--x", ""])
def test_bad_repo_id_is_refused_before_any_upload(model, processor, repo_id):
    with (
        mock.patch.object(huggingface_hub.HfApi, "create_repo") as create_repo,
        mock.patch.object(huggingface_hub.HfApi, "upload_folder") as upload_folder,
    ):
        with pytest.raises(ValueError, match=re.escape(f"Invalid repo_id {repo_id!r}")):
            push_to_hub(model, processor, repo_id)
    create_repo.assert_not_called()
    upload_folder.assert_not_called()
