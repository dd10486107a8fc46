# Two entry points, each doing all of its own set-up on a fresh machine:
#   make demo   the end-to-end demo (outputs/demo/)
#   make demo-from-scratch   the same, training both stages here
#   make test   the test suite (the default run: everything not marked slow)
#   make test-slow   the slow checks (the committed checkpoint on the demo's 200 held-out clips)
#   make mutations   break each guarded claim on purpose and check that the tests catch it (docs/TESTING.md)
#   make test-min-versions   the committed checkpoints and the pipeline under the lowest supported transformers
#   make test-transformers-common   transformers' own common model tests (ModelTesterMixin) on tiny T-VQ and MMVG
#   make tvq-textcam   re-make the natural-content T-VQ of checkpoints/tvq-textcam-64x8 (about an hour on 2 cores)
#   make mmvg-textcam  re-make the TextCam MMVG of checkpoints/mmvg-textcam-64x8 (about 4 hours on 2 cores)
#   make app   the Hugging Face Space's page (app.py) on http://127.0.0.1:7860
#   make test-browser   the app in headless Chromium (Debian's chromium, installed by make browser-deps when missing)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# the environment with the lowest supported transformers: the floor of `transformers>=` in pyproject.toml
MIN_VENV  ?= .venv-min
MIN_PY    := $(MIN_VENV)/bin/python
MIN_STAMP := $(MIN_VENV)/.installed
TRANSFORMERS_FLOOR := $(shell sed -n 's/^ *"transformers>=\([0-9][0-9.]*\).*/\1/p' pyproject.toml)

.PHONY: demo demo-from-scratch test test-slow mutations test-min-versions test-transformers-common tvq-textcam \
	mmvg-textcam install app browser-deps test-browser clean

# Built from scratch whenever pyproject.toml changes: a dependency dropped from it must not stay installed from an
# earlier build and hide a missing install step.
$(STAMP): pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision first, pinned to the builds this machine carries on disk
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[test,photos]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m transformers_mmvg.demo --out outputs/demo

# the same demo, but T-VQ and MMVG are trained here instead of taken from checkpoints/ (1 to 1.5 hours on 2 cores)
demo-from-scratch: $(STAMP)
	$(PY) -m transformers_mmvg.demo --out outputs/demo-from-scratch --from-scratch

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

mutations: $(STAMP)
	$(PY) tests/mutations.py

# Separate from .venv and also built from scratch whenever pyproject.toml changes: the same torch pins, this package
# without extras, and transformers held at the floor that pyproject.toml declares.
$(MIN_STAMP): pyproject.toml
	@test -n "$(TRANSFORMERS_FLOOR)" || { echo "pyproject.toml declares no transformers>= floor"; exit 1; }
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_PY) -m pip install --quiet --upgrade pip
	$(MIN_PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(MIN_PY) -m pip install --quiet -e . "transformers==$(TRANSFORMERS_FLOOR)"
	touch $(MIN_STAMP)

# about 2 minutes on 2 cores once .venv-min exists (.ci/check_min_versions.py says what it checks)
test-min-versions: $(MIN_STAMP)
	$(MIN_PY) .ci/check_min_versions.py --transformers $(TRANSFORMERS_FLOOR)

# transformers' tests/test_modeling_common.py from the installed version's sdist (downloaded into outputs/), about
# 2 minutes on 2 cores (tests/transformers_common/run.py)
test-transformers-common: $(STAMP)
	$(PY) tests/transformers_common/run.py

# The natural-content T-VQ (checkpoints/README.md): photos gathered from the installed packages, 4,000 TextCam clips
# over them, 100 clips of the held-out photos, then run_tvq.py. One torch thread: faster than two on this machine.
TVQ_TEXTCAM := outputs/tvq-textcam
tvq-textcam: $(STAMP)
	$(PY) -m transformers_mmvg.data.photos --out $(TVQ_TEXTCAM)/photos --overwrite
	$(PY) -m transformers_mmvg.data.textcam --preset textcam-64x8 --num-clips 4000 --seed 0 \
		--photos $(TVQ_TEXTCAM)/photos --out $(TVQ_TEXTCAM)/train --overwrite
	$(PY) -m transformers_mmvg.data.textcam --preset textcam-64x8 --num-clips 100 --seed 1 --split held_out \
		--out $(TVQ_TEXTCAM)/held_out --overwrite
	OMP_NUM_THREADS=1 $(PY) examples/run_tvq.py --train_dir $(TVQ_TEXTCAM)/train --eval_dir $(TVQ_TEXTCAM)/held_out \
		--num_frames 8 --resolution 64 --config_preset textcam-64x8 --augment True --max_steps 4000 \
		--logging_steps 50 --save_strategy no --disable_tqdm True --output_dir $(TVQ_TEXTCAM)/model

# The TextCam MMVG (checkpoints/README.md): 8,000 TextCam clips over the gathered photos and 200 of the held-out
# photos (written by run_mmvg.py's --preset textcam-64x8), the committed natural-content T-VQ frozen, tokens cached;
# 3,000 steps, then 3,000 more from that model with a fresh schedule (model-continued is the checkpoint).
MMVG_TEXTCAM := outputs/mmvg-textcam
MMVG_TEXTCAM_CONFIG := {"hidden_size": 128, "num_attention_heads": 4, "intermediate_size": 512, \
	"num_encoder_layers": 1, "num_decoder_layers": 3, "window_size": [2, 8, 8], "previous_frame_radius": 1, \
	"task_masking_probability": 0.7, "previous_frame_copy": true}
mmvg-textcam: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) examples/run_mmvg.py --tvq_path checkpoints/tvq-textcam-64x8 --preset textcam-64x8 \
		--data_dir $(MMVG_TEXTCAM)/data --num_train_clips 8000 --num_eval_clips 200 \
		--config_overrides '$(MMVG_TEXTCAM_CONFIG)' --per_device_train_batch_size 16 --learning_rate 1e-3 \
		--warmup_steps 200 --max_steps 3000 --eval_strategy steps --eval_steps 600 --save_steps 600 \
		--logging_steps 50 --num_completion_eval_clips 48 --disable_tqdm True --output_dir $(MMVG_TEXTCAM)/model
	OMP_NUM_THREADS=1 $(PY) examples/run_mmvg.py --model_name_or_path $(MMVG_TEXTCAM)/model --preset textcam-64x8 \
		--data_dir $(MMVG_TEXTCAM)/data --num_train_clips 8000 --num_eval_clips 200 \
		--per_device_train_batch_size 16 --learning_rate 5e-4 --warmup_steps 100 --max_steps 3000 \
		--eval_strategy steps --eval_steps 1000 --save_steps 1000 --logging_steps 50 --num_completion_eval_clips 48 \
		--disable_tqdm True --output_dir $(MMVG_TEXTCAM)/model-continued
	OMP_NUM_THREADS=2 $(PY) examples/run_mmvg.py --model_name_or_path $(MMVG_TEXTCAM)/model-continued \
		--config_overrides '{"next_frame_copy": true}' --preset textcam-64x8 --data_dir $(MMVG_TEXTCAM)/data \
		--num_train_clips 8000 --num_eval_clips 200 --per_device_train_batch_size 16 --learning_rate 5e-4 \
		--warmup_steps 100 --max_steps 2500 --eval_strategy steps --eval_steps 1250 --save_steps 500 \
		--logging_steps 50 --num_completion_eval_clips 48 --disable_tqdm True --output_dir $(MMVG_TEXTCAM)/model-next

# The app of a Hugging Face Space (app.py; README.md's front matter): `make app` serves it on http://127.0.0.1:7860
# (APP_HOST=... APP_PORT=... for others). The `app` extra (gradio, selenium) goes into the same .venv, once.
APP_STAMP := $(VENV)/.app-installed
APP_HOST  ?= 127.0.0.1
APP_PORT  ?= 7860
$(APP_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[app]"
	touch $(APP_STAMP)

app: $(APP_STAMP)
	$(PY) app.py --host $(APP_HOST) --port $(APP_PORT)

# Debian's Chromium and its WebDriver for the browser test (apt, as root), unless both are already on PATH
browser-deps:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		echo "chromium and chromedriver found: $$(command -v chromium), $$(command -v chromedriver)"; \
	else \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	fi

# The app in headless Chromium (tests/test_app_browser.py; about 35 s on 2 cores once installed): a completion and its
# clip, refused inputs as messages, and a TextCam photo when that model is there. MMVG_BROWSER_TEST=required turns a
# missing gradio, selenium or Chromium into a failure, not a skip.
test-browser: $(APP_STAMP) browser-deps
	MMVG_BROWSER_TEST=required $(PY) -m pytest -q -m browser tests/test_app_browser.py

clean:
	rm -rf $(VENV) $(MIN_VENV) outputs build *.egg-info src/*.egg-info
