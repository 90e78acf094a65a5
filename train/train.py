#!/usr/bin/env python
"""Train FER-VGG16 on FER2013 with Accelerate (in the shape of accelerate's examples/cv_example.py).

    python train/train.py --config train/configs/best.yaml --dataset ../shared/fer2013 --output_dir outputs/best
    accelerate launch --multi_gpu --num_processes 4 train/train.py --config train/configs/best.yaml ...

The recipe (hyper-parameters) comes from a preset YAML (`--config`) and any flag overrides it. The run:
data (decoded once to uint8 tensors; train stays on the device, train/batches.py) -> model (random, ImageNet,
or every weight of --init_from: train/init_from.py) -> epochs until the last or --max_time (train/budget.py)
(batched on-device augmentation, each process on its own shard; optional EMA of the weights, train/ema.py;
validation through gather_for_metrics of every candidate, the raw weights and the EMA, keeping the better;
the best-validation model saved with save_pretrained into --output_dir; accelerate's save_state under
checkpoints/ for resuming, train/checkpoints.py, optionally pushed: train/hub_checkpoints.py) -> the finish
(train/finish.py, after the last epoch or a --max_time stop): test of the best model, its temperature fitted on
validation (train/calibrate.py) -> metrics.json, confusion matrix, reliability diagram, optional int8 ONNX
(--export_int8), model card, optional push (train/publish.py).
`--batch_size` is per process (accelerate's examples). The loss is summed on the device and read once per epoch;
validation runs without torch.compile (one compiled training graph, no recompiles for eval mode).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

PROCESS_START = time.monotonic()  # before the heavy imports: --max_time counts them (tens of seconds on a busy CPU)
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout (python train/train.py), no install needed

from collections.abc import Callable  # noqa: E402
from dataclasses import asdict, dataclass, field, replace  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

import datasets  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from accelerate.utils import ProjectConfiguration, TorchDynamoPlugin, broadcast_object_list, set_seed  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from fer_model import FerConfig, FerForImageClassification  # noqa: E402
from fer_model.data import load_fer2013, split_to_tensors  # noqa: E402
from fer_model.onnx_runtime import int8_calibration_faces  # noqa: E402
from train.augment import build_augment, build_mixup  # noqa: E402
from train.batches import DeviceBatches  # noqa: E402
from train.budget import TimeBudget  # noqa: E402
from train.checkpoints import load_checkpoint, project_configuration, resume_checkpoint, save_checkpoint  # noqa: E402
from train.ema import EMAModel  # noqa: E402
from train.evaluation import validate, without_compile  # noqa: E402
from train.finish import finish_run, stopped_marker  # noqa: E402
from train.init_from import load_init_weights  # noqa: E402
from train.optim import build_optimizer, build_scheduler, stepped_per_epoch  # noqa: E402
from train.publish import checkpoint_repo, clear_finish, save_best_model  # noqa: E402
from train.recipe import Recipe, RunOptions, parse_args  # noqa: E402

PROJECT_NAME = "fer-vgg16"


@dataclass
class TrainState:
    """Where a run stands; registered for checkpointing, so accelerate saves and restores it with the rest."""

    epoch: int = 0
    best_accuracy: float = -1.0
    best_epoch: int = 0
    best_model: str | None = None  # which candidate was kept: "model" (the raw weights) or "ema"
    best_model_files: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    recipe: dict[str, Any] = field(default_factory=dict)
    test_evaluations: int = 0  # finishes so far (a --max_time stop finishes too): each read the test split once

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__init__(**state)


# --- building blocks ---------------------------------------------------------------------------------


def build_accelerator(recipe: Recipe, cpu: bool = False, report_to: str = "none",
                      project_config: ProjectConfiguration | None = None) -> Accelerator:
    """Precision, tracker, checkpoint naming/rotation (ProjectConfiguration) and optional torch.compile."""
    accelerator = Accelerator(
        cpu=cpu, mixed_precision=recipe.mixed_precision, log_with=None if report_to == "none" else report_to,
        project_config=project_config,
        step_scheduler_with_optimizer=False,  # our schedules count this process's optimizer steps
        dynamo_plugin=TorchDynamoPlugin(backend="inductor", mode=recipe.compile_mode) if recipe.torch_compile else None,
    )
    if not accelerator.is_local_main_process:  # one process reports progress
        datasets.disable_progress_bars()
        transformers.utils.logging.set_verbosity_error()
    if accelerator.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest convolutions
        torch.set_float32_matmul_precision("high")  # TF32 for whatever runs in float32
    return accelerator


def backbone_init(recipe: Recipe, options: RunOptions) -> bool | str:
    """What `pretrained_backbone` gets: ImageNet download (True), a local file, or nothing (False: random, or
    --init_from's weights loaded afterwards)."""
    if options.pretrained_weights and not recipe.pretrained:
        raise ValueError("--pretrained_weights contradicts --no-pretrained (pretrained: false)")
    if options.init_from and options.pretrained_weights:
        raise ValueError("--init_from loads every weight: drop --pretrained_weights")
    return False if options.init_from else options.pretrained_weights or recipe.pretrained


def build_model(recipe: Recipe, label_names: list[str], pretrained_backbone: bool | str = False,
                device: torch.device | str = "cpu") -> FerForImageClassification:
    """The recipe's model on `device` (labels from the dataset); frozen layers only on top of ImageNet weights."""
    config = FerConfig(**recipe.model_arguments(), id2label=dict(enumerate(label_names)))
    model = FerForImageClassification(config, pretrained_backbone=pretrained_backbone)
    model.freeze_backbone(recipe.freeze_until)
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if recipe.channels_last else model


# --- the loop ---------------------------------------------------------------------------------------


def training_step(accelerator: Accelerator, model: torch.nn.Module, optimizer: Any, pixel_values: torch.Tensor,
                  target: torch.Tensor, loss_fn: Callable[..., torch.Tensor], scheduler: Any = None,
                  clip_value: float | None = None) -> torch.Tensor:
    """One optimisation step (and a per-step schedule's step). Returns the loss detached, still on the device:
    nothing here waits for it."""
    torch.compiler.cudagraph_mark_step_begin()  # CUDA graphs (compile_mode reduce-overhead): a new iteration
    loss = loss_fn(model(pixel_values=pixel_values).logits.float(), target)
    accelerator.backward(loss)
    if clip_value is not None:
        accelerator.clip_grad_value_(model.parameters(), clip_value)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def train_one_epoch(accelerator: Accelerator, model: torch.nn.Module, step: Callable[..., torch.Tensor],
                    batches: DeviceBatches, epoch: int, ema: EMAModel | None = None) -> tuple[float, float, float]:
    """One epoch of `step(pixel_values, target)` on this process's shard.

    Returns (mean train loss over all processes, images/s, seconds).
    """
    model.train()
    set_seed(batches.seed + epoch, device_specific=True)  # dropout and MixUp: the same draws resumed or not
    raw_model = accelerator.unwrap_model(model, keep_torch_compile=False)  # the module the EMA follows
    loss_sum, seen = torch.zeros((), device=accelerator.device), 0
    start = time.perf_counter()
    for pixel_values, target in tqdm(batches.epoch(epoch), total=batches.steps_per_epoch, desc=f"epoch {epoch}",
                                     leave=False, disable=not accelerator.is_local_main_process):
        loss_sum += step(pixel_values, target) * len(pixel_values)
        seen += len(pixel_values)
        if ema is not None:
            ema.update_parameters(raw_model)
    totals = accelerator.reduce(torch.stack([loss_sum, torch.tensor(float(seen), device=loss_sum.device)]), "sum")
    total_loss, total_seen = totals.tolist()  # the one wait for the device, once per epoch
    seconds = time.perf_counter() - start
    return total_loss / total_seen, total_seen / seconds, seconds


def load_splits(accelerator: Accelerator, options: RunOptions, seed: int,
                ) -> tuple[dict[str, tuple], list[str], torch.Tensor | None]:
    """Every split decoded once to (uint8 images, labels); a seeded subset when --max_*_samples is given. And
    with --export_int8, the uint8 training faces that calibrate it (of the whole train split)."""
    with accelerator.main_process_first():
        data = load_fer2013(options.dataset, image_column=options.image_column, label_column=options.label_column,
                            skip_bad_rows=options.skip_bad_rows)
    limits = {"train": options.max_train_samples, "validation": options.max_eval_samples,
              "test": options.max_eval_samples}
    splits = {name: split_to_tensors(data[name] if limit is None or limit >= len(data[name])
                                     else data[name].shuffle(seed=seed).select(range(limit)))
              for name, limit in limits.items()}
    int8_faces = int8_calibration_faces(data["train"]) if options.export_int8 else None
    return splits, data["train"].features["label"].names, int8_faces


def training_function(recipe: Recipe, options: RunOptions, argv: list[str], started: float | None = None,
                      ) -> dict[str, Any]:
    run_start, output_dir = time.perf_counter(), Path(options.output_dir)
    budget = TimeBudget(options.max_time, recipe.tta, options.export_int8,  # --max_time; unlimited without it
                        spent=time.monotonic() - started if started is not None else 0.0)
    ignored_freeze = recipe.freeze_until if not recipe.pretrained else None  # freezing is for ImageNet weights
    recipe = replace(recipe, freeze_until=None) if ignored_freeze else recipe
    # A bad checkpoint or a changed recipe fails here, before any data is loaded.
    checkpoint = (resume_checkpoint(options.resume_from_checkpoint, output_dir, asdict(recipe), options.hub_model_id)
                  if options.resume_from_checkpoint else None)
    push_to = checkpoint_repo(options, output_dir)  # --push_checkpoints: the repo, created before training
    accelerator = build_accelerator(recipe, options.cpu, options.report_to,
                                    project_configuration(output_dir, options.checkpoints_total_limit))
    if ignored_freeze:
        accelerator.print(f"note: freeze_until={ignored_freeze} ignored: training from scratch (--no-pretrained)")
    set_seed(recipe.seed)
    splits, label_names, int8_faces = load_splits(accelerator, options, recipe.seed)
    with accelerator.main_process_first():  # one ImageNet download, then the others read the cache
        model = build_model(recipe, label_names, backbone_init(recipe, options), accelerator.device)
        if options.init_from:  # all its weights, before the optimizer and the EMA copy them
            load_init_weights(model, options.init_from)
    config = model.config
    images, labels = (t.to(accelerator.device) for t in splits["train"])  # resident for the whole run
    batches = DeviceBatches(images, labels, config, recipe.batch_size, recipe.seed, augment=build_augment(recipe),
                            mixup=build_mixup(recipe, config.num_labels), channels_last=recipe.channels_last,
                            process_index=accelerator.process_index, num_processes=accelerator.num_processes,
                            drop_last=recipe.drop_last)
    optimizer = build_optimizer(recipe, model)  # after model.to(device): fused kernels on a GPU
    scheduler = build_scheduler(recipe, optimizer, batches.steps_per_epoch * recipe.epochs)
    ema = EMAModel(model, recipe.ema_decay) if recipe.ema_decay is not None else None
    loaders = tuple(DataLoader(TensorDataset(*splits[name]), batch_size=options.eval_batch_size)
                    for name in ("validation", "test"))
    model, optimizer, val_loader, test_loader, scheduler = accelerator.prepare(model, optimizer, *loaders, scheduler)
    state = TrainState(recipe=asdict(recipe))
    accelerator.register_for_checkpointing(state, *([ema] if ema is not None else []))  # state first: STATE_FILE
    if checkpoint is not None:
        load_checkpoint(accelerator, checkpoint)
        clear_finish(accelerator, output_dir)  # the folder is no longer what the last finish published
        accelerator.print(f"resumed from {checkpoint} (epoch {state.epoch}, best val {state.best_accuracy:.4f})")
    start_report(accelerator, recipe, options, splits, batches.steps_per_epoch)
    step = partial(training_step, accelerator, model, optimizer, scheduler=scheduler,  # plateau: its warm-up
                   loss_fn=partial(F.cross_entropy, label_smoothing=recipe.label_smoothing),  # or MixUp's soft targets
                   clip_value=recipe.grad_clip_value)
    candidates = {"model": without_compile(model), **({"ema": ema.module} if ema is not None else {})}
    budget.epochs_start()
    stopped = None
    for epoch in range(state.epoch + 1, recipe.epochs + 1):
        train_loss, images_per_second, train_time = train_one_epoch(accelerator, model, step, batches, epoch, ema)
        validation_start = time.perf_counter()
        record = validate(accelerator, candidates, val_loader, config, recipe.channels_last)
        improved = record["val_accuracy"] > state.best_accuracy
        if improved:
            state.best_model_files = save_best_model(accelerator, candidates[record["candidate"]], output_dir)
            state.best_accuracy, state.best_epoch, state.best_model = record["val_accuracy"], epoch, record["candidate"]
        state.epoch = epoch
        state.history.append({"epoch": epoch, "train_loss": train_loss, **record, "lr": scheduler.get_last_lr()[0],
                              "images_per_second": images_per_second, "train_time_s": train_time})
        if stepped_per_epoch(recipe):  # after recording the lr this epoch trained with
            scheduler.step(record["val_accuracy"])
        budget.epoch_done(time.perf_counter() - validation_start)
        out_of_time = broadcast_object_list([budget.ends_after(epoch, recipe.epochs)])[0]  # main's clock decides
        stopped = stopped_marker(epoch, recipe.epochs) if out_of_time else None
        interrupted = options.stop_after_epoch is not None and options.stop_after_epoch <= epoch < recipe.epochs
        state.test_evaluations += bool(stopped)  # the finish below, counted in the checkpoint for the next one
        if epoch % options.checkpoint_every == 0 or epoch == recipe.epochs or interrupted or stopped:
            save_checkpoint(accelerator, epoch, state.best_model_files, options.checkpoint_optimizer, push_to)
        report_epoch(accelerator, state.history[-1], recipe.epochs, improved)
        if interrupted:
            accelerator.print(f"stopped after epoch {epoch} (--stop_after_epoch); continue with "
                              "--resume_from_checkpoint latest")
            accelerator.end_training()
            return {"stopped_after_epoch": epoch, "state": state.state_dict()}
        if stopped:
            accelerator.print(f"{stopped}: {budget.explain()} (--max_time {options.max_time}); finishing the "
                              "folder with the best model so far (continue with --resume_from_checkpoint latest)")
            break
    state.test_evaluations += not stopped
    metrics = finish_run(accelerator, recipe, options, state, (val_loader, test_loader), config, splits, int8_faces,
                         run_start, argv, stopped)
    accelerator.end_training()
    return metrics


def start_report(accelerator: Accelerator, recipe: Recipe, options: RunOptions, splits: dict[str, tuple],
                 steps_per_epoch: int) -> None:
    """The tracker's run config (scalars only) and one line saying what trains where."""
    if options.report_to != "none":
        accelerator.init_trackers(PROJECT_NAME, config={k: "none" if v is None else str(v) if isinstance(v, list)
                                                        else v for k, v in
                                                        {**asdict(recipe), "dataset": options.dataset}.items()})
    sizes = " ".join(f"{name}={len(split_labels)}" for name, (_, split_labels) in splits.items())
    accelerator.print(f"num_processes={accelerator.num_processes} device={accelerator.device} mixed_precision="
                      f"{recipe.mixed_precision} {sizes} batch_size={recipe.batch_size}x{accelerator.num_processes} "
                      f"steps_per_epoch={steps_per_epoch}")


def report_epoch(accelerator: Accelerator, record: dict[str, Any], epochs: int, improved: bool) -> None:
    """One line per epoch on the main process, the same figures to the tracker (TensorBoard)."""
    accelerator.log({"train/loss": record["train_loss"], "val/loss": record["val_loss"],
                     "val/accuracy": record["val_accuracy"], "val/macro_f1": record["val_macro_f1"],
                     "lr": record["lr"], "images_per_second": record["images_per_second"]}, step=record["epoch"])
    each = [f"{key.removeprefix('val_accuracy_')} {value:.4f}" for key, value in record.items()
            if key.startswith("val_accuracy_")]
    raw = f" ({', '.join(each)}: {record['candidate']} kept)" if each else ""
    accelerator.print(f"epoch {record['epoch']}/{epochs}: train_loss {record['train_loss']:.4f} "
                      f"val_loss {record['val_loss']:.4f} val_accuracy {record['val_accuracy']:.4f}{raw} "
                      f"{record['images_per_second']:.0f} images/s{' (best, saved)' if improved else ''}")


def main(argv: list[str] | None = None, started: float | None = None) -> dict[str, Any]:
    """`started`: when the process started (time.monotonic), as `python train/train.py` passes it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe, options = parse_args(argv, description=__doc__)
    return training_function(recipe, options, argv, started)


if __name__ == "__main__":
    main(started=PROCESS_START)
