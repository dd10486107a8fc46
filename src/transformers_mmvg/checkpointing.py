"""Saves that are complete or absent: `AtomicSaveMixin` for the project's `Trainer`s (`TVQTrainer`, `MMVGTrainer`).

A run stopped while saving (SIGTERM, a full disk) must leave nothing that looks saved and is not: no `checkpoint-N`
folder with only a `config.json` in it, no `config.json` beside weights of an earlier save. Everything is written under
a staging name first (`.partial-checkpoint-N`, `.partial-model`), which neither `get_last_checkpoint` nor the
checkpoint rotation takes for a checkpoint, and then renamed into place.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

__all__ = ["STAGING_PREFIX", "AtomicSaveMixin", "publish_files", "replace_folder"]

STAGING_PREFIX = ".partial-"


def replace_folder(source: Path, target: Path) -> None:
    """Rename `source` to `target`. An existing `target` is moved aside first and deleted after, so at every moment
    `target` is the old folder, absent, or the new one (a rename within a file system is atomic)."""
    old = target.with_name(f"{STAGING_PREFIX}replaced-{target.name}")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(source, target)
    shutil.rmtree(old, ignore_errors=True)


def publish_files(staging: Path, folder: Path, last: str = "config.json") -> None:
    """Move every file of `staging` into `folder` (each move atomic), `last` at the end, then remove `staging`. An
    older `last` in `folder` is removed first: a `config.json` in `folder` then always comes with the files saved
    beside it, never with a mix of an earlier save's and this one's."""
    (folder / last).unlink(missing_ok=True)
    for path in sorted(staging.iterdir(), key=lambda path: path.name == last):
        if path.is_dir():
            replace_folder(path, folder / path.name)
        else:
            os.replace(path, folder / path.name)
    staging.rmdir()


class AtomicSaveMixin:
    """`Trainer` mixin whose saves are complete or absent, so that a run stopped while saving (SIGTERM, a full disk)
    leaves nothing that looks saved and is not:

    - a checkpoint is written whole into `.partial-checkpoint-N` beside where it belongs, then renamed to
      `checkpoint-N`; the rotation (`save_total_limit`), the best-model bookkeeping and pushes to the Hub see only
      complete checkpoints, and `--resume_from_checkpoint True` (`get_last_checkpoint`) picks the last complete one;
    - `save_model(folder)` writes into `folder/.partial-model`, then moves the files in with `config.json` last
      (`publish_files`), so a `config.json` in `folder` is always beside the weights it describes.

    Every process writes its part (under DDP the RNG state of each) into the same staging folder; the processes that
    save (`args.should_save`) publish it once all are done.
    """

    _checkpoint_staging_dir: str | None = None

    def _get_output_dir(self, trial) -> str:
        # while `_save_checkpoint` runs, `Trainer._save_checkpoint` writes its `checkpoint-N` into the staging folder
        if self._checkpoint_staging_dir is not None:
            return self._checkpoint_staging_dir
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(self._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging = run_dir / f"{STAGING_PREFIX}{name}"
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)  # left by a run stopped while saving this step
        self.accelerator.wait_for_everyone()
        self._checkpoint_staging_dir = str(staging)
        try:
            super()._save_checkpoint(model, trial)  # writes staging/checkpoint-N (its rotation there sees only it)
        finally:
            self._checkpoint_staging_dir = None
        self.accelerator.wait_for_everyone()
        checkpoint = run_dir / name
        if self.state.best_model_checkpoint == str(staging / name):  # this checkpoint is the best one
            self.state.best_model_checkpoint = str(checkpoint)
            if self.args.should_save:
                self.state.save_to_json(str(staging / name / TRAINER_STATE_NAME))
        if self.args.should_save:
            replace_folder(staging / name, checkpoint)
            shutil.rmtree(staging, ignore_errors=True)
            rotate_checkpoints(
                str(run_dir), self.args.save_total_limit, self.state.best_model_checkpoint, use_mtime=True
            )  # fmt: skip
        if self.args.push_to_hub:
            self._push_from_checkpoint(str(checkpoint))

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        # called by `Trainer._save_checkpoint` on the staging folder: `_save_checkpoint` pushes the renamed one
        if self._checkpoint_staging_dir is None:
            super()._push_from_checkpoint(checkpoint_folder)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """As `Trainer.save_model`, through a staging folder (see the class docstring)."""
        if self._checkpoint_staging_dir is not None:  # part of a checkpoint, which is staged as a whole
            super().save_model(output_dir, _internal_call)
            return
        folder = Path(output_dir or self.args.output_dir)
        staging = folder / f"{STAGING_PREFIX}model"
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        super().save_model(str(staging), _internal_call=True)  # every process: a sharded model is gathered
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            publish_files(staging, folder)
        if self.args.push_to_hub and not _internal_call:
            self.push_to_hub(commit_message="Model save", revision=self.args.hub_revision)
