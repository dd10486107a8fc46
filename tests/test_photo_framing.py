"""A photograph given to the pipeline is framed as the model's training frames framed theirs (issue 17, item 3):
`MMVGVideoProcessor.photo_crop_fraction`, saved with the processor and applied by `load_frame`."""

import numpy as np
import pytest
import torch
from PIL import Image

from transformers_mmvg import MMVGVideoProcessor
from transformers_mmvg.pipeline_video_completion import load_frame
from transformers_mmvg.video_io import resize_center_crop


def test_photo_crop_fraction_is_saved_with_the_processor(tmp_path):
    MMVGVideoProcessor(photo_crop_fraction=0.5).save_pretrained(tmp_path)
    assert MMVGVideoProcessor.from_pretrained(tmp_path).photo_crop_fraction == 0.5
    assert MMVGVideoProcessor().photo_crop_fraction == 1.0
    # preprocessing itself is unchanged by it
    clip = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    assert torch.equal(MMVGVideoProcessor(photo_crop_fraction=0.5)(clip)["pixel_values_videos"],
                       MMVGVideoProcessor()(clip)["pixel_values_videos"])


def test_a_photo_is_cropped_to_the_fraction_and_a_frame_is_kept_whole():
    photo = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    framed = load_frame(Image.fromarray(photo), 64, photo_crop_fraction=0.5)
    centre = torch.from_numpy(photo[75:225, 125:275]).permute(2, 0, 1)  # the centre 150 x 150 (half of 300)
    assert torch.equal(framed, resize_center_crop(centre[None], 64)[0])
    frame = photo[:64, :64]
    assert torch.equal(load_frame(frame, 64, photo_crop_fraction=0.5), torch.from_numpy(frame).permute(2, 0, 1))
    with pytest.raises(ValueError, match="photo_crop_fraction"):
        load_frame(frame, 64, photo_crop_fraction=0.0)
