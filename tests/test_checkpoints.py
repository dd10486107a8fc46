"""The committed checkpoints that `make demo` uses: they load through the Auto classes and the pipeline, and the
MMVG one still follows captions on fresh held-out clips with this code."""

from pathlib import Path

from transformers import AutoModel, pipeline

from transformers_mmvg import MMVGForVideoCompletion, TVQModel
from transformers_mmvg.data.textshapes import write_textshapes
from transformers_mmvg.data.video_folder import load_video_folder
from transformers_mmvg.evaluation import evaluate_completion

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


def test_tvq_checkpoint_loads():
    tvq = AutoModel.from_pretrained(CHECKPOINTS / "tvq-textshapes-64x8")
    assert isinstance(tvq, TVQModel) and tvq.config.latent_size == 4


def test_mmvg_checkpoint_follows_captions_on_fresh_clips(tmp_path):
    pipe = pipeline("text-guided-video-completion", model=str(CHECKPOINTS / "mmvg-textshapes-64x8"))
    assert isinstance(pipe.model, MMVGForVideoCompletion)
    # seed 7: clips the training commands never drew (they used seeds 42 and 43)
    write_textshapes(tmp_path, num_clips=16, seed=7, num_workers=1)
    dataset = load_video_folder(tmp_path, num_frames=8, resolution=64)
    rows = [dataset[index] for index in range(len(dataset))]
    results = evaluate_completion(pipe.model, pipe.processor, rows, tasks=("prediction", "rewind"),
                                  methods=("mmvg", "copy_frame"), temperature=0.0)
    for task in ("prediction", "rewind"):
        assert results[task]["mmvg"]["caption_following"] >= 0.75, (task, results[task])
        assert results[task]["copy_frame"]["caption_following"] == 0.0
