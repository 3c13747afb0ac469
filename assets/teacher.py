"""``teacher``: a behavioral-cloning policy trained on the experiment's ``training_set``."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from exphil_pipeline.orchestration.partitions import experiments
from exphil_pipeline.orchestration.resources import ExphilStorage
from exphil_pipeline.training.report import head_accuracy_table, loss_curves_png, png_markdown
from exphil_pipeline.training.teacher_config import TeacherConfig
from exphil_pipeline.training.teacher_trainer import train


@asset(
    deps=["training_set"],
    partitions_def=experiments,
    group_name="training",
    description="A PyTorch policy (backbone + autoregressive controller head) trained by "
    "behavioral cloning; best.pt holds the lowest held-out loss, last.pt resumes training. "
    "Both carry the policy contract (frame delay, characters, spec hashes, training set).",
)
def teacher(
    context: AssetExecutionContext, config: TeacherConfig, storage: ExphilStorage
) -> MaterializeResult:
    """Train, evaluate each epoch on held-out games, keep the best checkpoint."""
    experiment = storage.layout.experiment(context.partition_key)
    result = train(config, storage.layout.home, experiment.name, log=context.log.info)
    png = loss_curves_png(result.curve, result.history, experiment.teacher_curves)
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(result.folder)),
            "backbone": config.backbone,
            "parameters": result.parameters,
            "device": result.device,
            "steps": result.steps,
            "stopped_early": result.stopped_early,
            "train_frames_per_s": round(result.frames_per_s, 1),
            "heldout_loss": round(result.best.get("loss", float("nan")), 4),
            "loss_curves": MetadataValue.md(png_markdown(png, "loss curves")),
            "heldout_accuracy": MetadataValue.md(head_accuracy_table(result.best)),
            "tensorboard": MetadataValue.path(str(experiment.teacher_tensorboard)),
        }
    )
