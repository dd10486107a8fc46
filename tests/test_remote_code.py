"""A model folder written for the Hub (`hub.save_for_hub`, what `push_to_hub` uploads) loads like any third-party
model: in a process where `transformers_mmvg` cannot be imported, `AutoModel`, `AutoProcessor` and `pipeline(...)`
with `trust_remote_code=True` work from the code the folder carries (`auto_map`, `custom_pipelines`), and complete a
clip exactly as the package does. A folder written by `model.save_pretrained` carries `auto_map` too (AutoModel and
AutoProcessor load it without the package) but no `custom_pipelines`, so with the package installed the registered
pipeline serves it without `trust_remote_code`."""

import json
import os
import subprocess
import sys

import numpy as np
from transformers import pipeline

from transformers_mmvg.hub import build_model_card, save_for_hub
from tiny_models import tiny_model, tiny_processor

# run in a fresh interpreter; a meta-path finder refuses the package, so only the folder's code can serve
REMOTE_SCRIPT = r"""
import json, sys
class RefuseThePackage:
    def find_spec(self, name, path=None, target=None):
        if name == "transformers_mmvg" or name.startswith("transformers_mmvg."):
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, RefuseThePackage())
import numpy as np
from transformers import AutoConfig, AutoModel, AutoProcessor, pipeline
folder = sys.argv[1]
model = AutoModel.from_pretrained(folder, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
pipe = pipeline("text-guided-video-completion", model=folder, trust_remote_code=True)
frame = np.load(sys.argv[2])
out = pipe("the red circle moves left", images=[frame], output_type="np", temperature=0.0, progress=False)
np.save(sys.argv[3], out["frames"])
print(json.dumps({
    "config": type(AutoConfig.from_pretrained(folder, trust_remote_code=True)).__name__,
    "model": type(model).__name__, "model_module": type(model).__module__,
    "processor": type(processor).__name__, "video_processor": type(processor.video_processor).__name__,
    "pipeline": type(pipe).__name__, "package_imported": "transformers_mmvg" in sys.modules,
}))
"""


def test_saved_folder_loads_and_completes_without_the_package(tmp_path):
    folder = tmp_path / "mmvg"
    model = tiny_model()
    save_for_hub(model, tiny_processor(), folder, build_model_card(model))
    assert not hasattr(model.config, "custom_pipelines")  # the in-memory model is as it was
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "configuration_mmvg.MMVGConfig",
                                  "AutoModel": "modeling_mmvg.MMVGForVideoCompletion"}
    assert config["custom_pipelines"]["text-guided-video-completion"]["impl"] == (
        "pipeline_video_completion.VideoCompletionPipeline")
    frame = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    np.save(tmp_path / "frame.npy", frame)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, str(folder), str(tmp_path / "frame.npy"), str(tmp_path / "out.npy")],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {
        "config": "MMVGConfig", "model": "MMVGForVideoCompletion", "model_module": loaded["model_module"],
        "processor": "MMVGProcessor", "video_processor": "MMVGVideoProcessor",
        "pipeline": "VideoCompletionPipeline", "package_imported": False,
    }
    assert loaded["model_module"].startswith("transformers_modules.")  # the folder's copy, not the package

    # the same completion from the installed package: a folder saved with `save_pretrained` needs no remote code
    model.save_pretrained(tmp_path / "local")
    tiny_processor().save_pretrained(tmp_path / "local")
    assert "custom_pipelines" not in json.loads((tmp_path / "local" / "config.json").read_text())
    here = pipeline("text-guided-video-completion", model=str(tmp_path / "local"))
    expected = here("the red circle moves left", images=[frame], output_type="np", temperature=0.0, progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected["frames"])


def test_loading_a_hub_folder_does_not_take_the_task_from_the_package(tmp_path):
    from transformers_mmvg import VideoCompletionPipeline

    model = tiny_model()
    save_for_hub(model, tiny_processor(), tmp_path / "hub", build_model_card(model))
    remote = pipeline("text-guided-video-completion", model=str(tmp_path / "hub"), trust_remote_code=True)
    assert type(remote).__module__.startswith("transformers_modules.")  # the folder's own copy of the pipeline
    model.save_pretrained(tmp_path / "local")
    tiny_processor().save_pretrained(tmp_path / "local")
    assert type(pipeline("text-guided-video-completion", model=str(tmp_path / "local"))) is VideoCompletionPipeline
