"""MMVG decoding speed and how the cost grows: mmvg-decoding (parallel vs autoregressive), mmvg-scaling (against the
number of frames), mmvg-scaling-resolution (against tokens per frame, in a fresh process per configuration)."""

from __future__ import annotations

import argparse
import math

import torch
from builders import _mmvg_model
from common import MIB, RESULTS, _best_seconds, _run_snippet, benchmark, header


@benchmark("mmvg-decoding")
def mmvg_decoding(args: argparse.Namespace) -> str:
    """Completion time of one 16-frame clip (prediction from frame 0) with the default MMVG config: parallel decoding
    (12 steps) against autoregressive decoding (frame by frame, token by token, cached keys/values)."""
    from transformers_mmvg.masking import given_mask_from_indices

    model = _mmvg_model(num_frames=16)
    config = model.config
    input_ids = torch.tensor([[config.text_bos_token_id, 320, 1125, config.text_eos_token_id]])
    pixel_values = torch.rand(1, 16, 3, config.image_size, config.image_size) * 2 - 1
    given = given_mask_from_indices([0], 16)[None]
    rows = ["| decoding | model calls | seconds per clip | speed-up |", "|---|---|---|---|"]
    timings = {}
    for decoding, steps, calls in (
        ("autoregressive", 12, 15 * (config.tokens_per_frame + 1)),
        ("parallel", 4, 4),
        ("parallel", 8, 8),
        ("parallel", 12, 12),
        ("parallel", 24, 24),
    ):
        seconds = _best_seconds(
            lambda: model.complete(input_ids, None, pixel_values, given, decoding=decoding, num_inference_steps=steps,
                                   generator=torch.Generator().manual_seed(0)),
            repeats=3,
        )
        timings[(decoding, steps)] = seconds
        label = decoding if decoding == "autoregressive" else f"parallel, {steps} steps"
        rows.append(f"| {label} | {calls} | {seconds:.3f} | {{speedup_{decoding}_{steps}}} |")
    reference = timings[("autoregressive", 12)]
    table = "\n".join(rows)
    for (decoding, steps), seconds in timings.items():
        table = table.replace(f"{{speedup_{decoding}_{steps}}}", f"{reference / seconds:.1f}x")
    parameters = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("tvq."))
    body = (
        "## MMVG decoding speed: parallel vs autoregressive, one 16-frame clip\n\n"
        f"Default config ({parameters / 1e6:.2f}M parameters besides the T-VQ; {config.tokens_per_frame} tokens per "
        "frame), untrained weights (the time does not depend on them), batch of 1, prediction from frame 0, "
        "best of 3. Target: parallel (12 steps, the default) >= 10x faster than autoregressive.\n\n"
    )
    return body + header("mmvg-decoding", "python benchmarks/run.py --only mmvg-decoding") + "\n" + table + "\n"


def _fit_exponent(sizes: list[int], seconds: list[float]) -> float:
    """Slope of log(seconds) against log(size), least squares."""
    import math

    xs, ys = [math.log(size) for size in sizes], [math.log(value) for value in seconds]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)


@benchmark("mmvg-scaling")
def mmvg_scaling(args: argparse.Namespace) -> str:
    """Decoder time per parallel decoding step and per training step against the number of frames (8 to 64)."""
    from plot import line_plot

    from transformers_mmvg.masking import given_mask_from_indices, sample_token_mask

    frame_counts = [8, 16, 32, 64]
    rows = [
        "| frames | tokens | decoder step (ms) | per frame (ms) | training step fwd+bwd (ms) | per frame (ms) |",
        "|---|---|---|---|---|---|",
    ]
    decode_times, train_times = [], []
    batch_size = 2
    for num_frames in frame_counts:
        model = _mmvg_model(num_frames)
        config = model.config
        input_ids = torch.tensor([[config.text_bos_token_id, 320, 1125, config.text_eos_token_id]] * batch_size)
        token_ids = torch.randint(0, config.codebook_size, (batch_size, num_frames, config.latent_size,
                                                            config.latent_size))
        given = given_mask_from_indices([0], num_frames)[None].expand(batch_size, -1)
        known = given[:, :, None, None].expand_as(token_ids)
        with torch.no_grad():
            encoded = model.model.encode(input_ids, None, token_ids, given)
            states, mask = encoded.encoder_last_hidden_state, encoded.encoder_attention_mask
            decode_seconds = _best_seconds(lambda: model.video_logits(token_ids, known, states, mask), repeats=5)
        token_mask = sample_token_mask(given, config.tokens_per_frame, generator=torch.Generator().manual_seed(0))
        token_mask = token_mask.view_as(token_ids)
        model.train()

        def training_step():
            model.zero_grad(set_to_none=True)
            model(input_ids, None, video_token_ids=token_ids, given_frames_mask=given, token_mask=token_mask).loss.backward()

        train_seconds = _best_seconds(training_step, repeats=3)
        decode_times.append(decode_seconds)
        train_times.append(train_seconds)
        rows.append(
            f"| {num_frames} | {num_frames * config.tokens_per_frame} | {1000 * decode_seconds:.1f} | "
            f"{1000 * decode_seconds / num_frames:.2f} | {1000 * train_seconds:.1f} | "
            f"{1000 * train_seconds / num_frames:.2f} |"
        )
    decode_exponent = _fit_exponent(frame_counts, decode_times)
    train_exponent = _fit_exponent(frame_counts, train_times)
    figure = "mmvg-scaling.png"
    curves = {f"decoder step, k = {decode_exponent:.2f}": decode_times,
              f"training step fwd+bwd, k = {train_exponent:.2f}": train_times}
    line_plot(
        RESULTS.parent / figure,
        {name: [(frames, 1000 * seconds) for frames, seconds in zip(frame_counts, times)] for name, times in
         curves.items()},
        x_label="frames", y_label="milliseconds", title=f"MMVG cost against the number of frames (batch {batch_size})",
        log_x=True, log_y=True,
    )
    body = (
        "## MMVG decoder cost against the number of frames\n\n"
        f"Default config (window {model.config.window_size}), batch of {batch_size}, untrained weights; best of 5 "
        "(decoder step) and of 3 (training step). Fitted exponent of time ~ frames^k: "
        f"decoder step k = {decode_exponent:.2f}, training step k = {train_exponent:.2f} (1 is linear; full "
        "attention over all tokens would tend to 2). Target: roughly linear from 8 to 64 frames.\n\n"
        f"![decoder and training step time against frames]({figure})\n\n"
    )
    return body + header("mmvg-scaling", "python benchmarks/run.py --only mmvg-scaling") + "\n" + "\n".join(rows) + "\n"


# A training step of the resolution benchmark in a fresh process: peak RSS over the first (untimed) step, then the
# best of 3 timed steps.
_RESOLUTION_SNIPPET = """
import builders
import common

step = builders._mmvg_training_step(PARAMS["config_kwargs"], PARAMS["batch_size"], with_optimizer=False)
baseline = common._reset_peak_rss()
step()
peak = common._peak_rss_above(baseline)
seconds = common._best_seconds(step, repeats=3)
print(json.dumps({"peak_bytes": peak, "seconds": seconds}))
"""


@benchmark("mmvg-scaling-resolution")
def mmvg_scaling_resolution(
    args: argparse.Namespace,
    image_sizes: tuple[int, ...] = (32, 64, 128, 256),
    num_frames: int = 8,
    batch_size: int = 2,
) -> str:
    """Training step time and peak memory against the frame size (tokens per frame), with the default whole-frame
    window and with a 4x4-token spatial window. The keyword arguments shrink it for a smoke check."""
    from plot import line_plot

    from transformers_mmvg import MMVGConfig, TVQConfig

    local = 4  # tokens per side of the spatial window
    window_frames = MMVGConfig(num_frames=num_frames).window_size[0]  # the default's, kept in both
    windows = {"whole-frame window (default)": None, f"{local}x{local}-token window": local}
    results = {name: [] for name in windows}  # name -> [(tokens per frame, seconds, peak bytes, window)]
    measured = {}
    for image_size in image_sizes:
        grid = TVQConfig(image_size=image_size).latent_size
        for name, side in windows.items():
            config_kwargs = {"tvq_config": {"image_size": image_size}, "num_frames": num_frames}
            if side is not None:
                config_kwargs["window_size"] = [window_frames, min(side, grid), min(side, grid)]
            config = MMVGConfig(**config_kwargs)
            key = (image_size, tuple(config.window_size))
            if key not in measured:  # small frames: both windows are the whole frame, one model
                measured[key] = _run_snippet(_RESOLUTION_SNIPPET, config_kwargs=config_kwargs, batch_size=batch_size)
            result = measured[key]
            results[name].append((config.tokens_per_frame, result["seconds"], result["peak_bytes"], config.window_size))

    rows = ["| frame | tokens per frame | window | training step (ms) | per token (us) | peak RSS (MiB) |",
            "|---|---|---|---|---|---|"]
    curves, exponents = {}, []
    for name, points in results.items():
        token_counts, seconds = [point[0] for point in points], [point[1] for point in points]
        overall = _fit_exponent(token_counts, seconds)
        largest = _fit_exponent(token_counts[-2:], seconds[-2:]) if len(points) > 1 else float("nan")
        exponents.append(f"{name}: k = {overall:.2f} over all sizes, {largest:.2f} between the two largest")
        curves[f"{name}, k = {overall:.2f}"] = [(count, 1000 * value) for count, value in zip(token_counts, seconds)]
        for image_size, (count, value, peak, window) in zip(image_sizes, points):
            grid = math.isqrt(count)
            rows.append(f"| {image_size}x{image_size} | {count} ({grid}x{grid}) | {window} | {1000 * value:.1f} "
                        f"| {1e6 * value / (batch_size * num_frames * count):.1f} | {peak / MIB:.0f} |")
    figure = "mmvg-scaling-resolution.png"
    line_plot(
        RESULTS.parent / figure, curves, x_label="tokens per frame", y_label="training step (ms)",
        title=f"MMVG training step against tokens per frame ({num_frames} frames, batch {batch_size})",
        log_x=True, log_y=True,
    )
    grids = [TVQConfig(image_size=size).latent_size for size in (image_sizes[0], image_sizes[-1])]
    body = (
        "## MMVG training cost against resolution (tokens per frame)\n\n"
        f"Default config with the T-VQ's `image_size` set to {', '.join(map(str, image_sizes))} (downsampling "
        f"{TVQConfig().downsampling_factor}: {grids[0]}x{grids[0]} to {grids[1]}x{grids[1]} tokens per frame), "
        f"{num_frames} frames, batch {batch_size}, untrained weights, random cached tokens (`video_token_ids`), "
        "prediction from frame 0 with a fixed token mask. Training step = forward + backward (no optimizer), best "
        "of 3 after one untimed step; peak RSS over that first step above the RSS after building the model, in a "
        f"fresh process per configuration. The default window spans {window_frames} frames and the whole "
        "frame, so attention grows with tokens^2 per window; the "
        f"{local}x{local}-token window (`window_size=[{window_frames}, {local}, {local}]`, clipped to the "
        "grid: where a frame has at most that many tokens it is the whole frame and the default's measurement is "
        "reused) should keep it close to linear. The time also has a fixed part (Python, small matmuls), which "
        "flattens the curve at the smallest sizes. Fitted exponent of time ~ (tokens per frame)^k: "
        f"{'; '.join(exponents)}.\n\n"
        f"![training step against tokens per frame]({figure})\n\n"
    )
    return (body + header("mmvg-scaling-resolution", "python benchmarks/run.py --only mmvg-scaling-resolution")
            + "\n" + "\n".join(rows) + "\n")
