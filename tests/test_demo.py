"""The README's main command, on a handful of clips."""

import json

from PIL import Image

from transformers_mmvg import demo


def test_demo_writes_the_splits_and_a_preview(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path), "--num-train", "8", "--num-test", "7", "--seed", "3"]) == 0
    for split, count in (("train", 8), ("test", 7)):
        rows = [json.loads(line) for line in (tmp_path / "data" / split / "metadata.jsonl").read_text().splitlines()]
        assert len(rows) == count
        assert all((tmp_path / "data" / split / row["file_name"]).is_file() for row in rows)
    grid = Image.open(tmp_path / "preview.png")
    gif = Image.open(tmp_path / "preview.gif")
    assert gif.n_frames == 8  # one GIF frame per clip frame (textshapes-64x8)
    # 6 preview rows of 8 frames, each frame upscaled x2 (128 px) with 2 px gaps and a 14 px caption strip
    assert grid.size == (8 * 130 + 2, 6 * (14 + 128 + 2) + 2)
    assert "pixel_values_videos (6, 8, 3, 64, 64)" in capsys.readouterr().out
