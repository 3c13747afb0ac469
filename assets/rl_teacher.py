"""``rl_teacher``: the imitation teacher fine-tuned by reinforcement learning in the simulator."""

from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from exphil_pipeline.orchestration.partitions import experiments
from exphil_pipeline.orchestration.resources import ExphilStorage
from exphil_pipeline.rl.rl_config import RLConfig
from exphil_pipeline.rl.rl_trainer import RLResult, train_rl
from exphil_pipeline.training.report import png_markdown


@asset(
    deps=["teacher"],
    partitions_def=experiments,
    group_name="training",
    description="PPO with a KL anchor to the imitation teacher, V-trace-corrected actors and "
    "self-play in the simulator; best.pt is in the teacher's format with its policy contract, "
    "so soft_labels (teacher: rl) distils it like any teacher. last.pt resumes a killed run.",
    check_specs=[
        AssetCheckSpec(
            "kl_to_teacher_within_bound",
            asset="rl_teacher",
            description="Mean KL(policy || imitation teacher) per frame over the last updates "
            "stays under the configured kl_bound.",
        ),
        AssetCheckSpec(
            "self_destructs_not_above_base",
            asset="rl_teacher",
            description="Against scripted:3, self-destructs per minute do not rise above the "
            "imitation base's (reward hacking shows there first).",
        ),
    ],
)
def rl_teacher(
    context: AssetExecutionContext, config: RLConfig, storage: ExphilStorage
) -> Iterator[MaterializeResult | AssetCheckResult]:
    result = train_rl(config, storage.layout.home, context.partition_key, log=context.log.info)
    if result is None:
        raise RuntimeError("the RL run stopped before spending its budget")
    yield MaterializeResult(metadata=_metadata(result))
    yield AssetCheckResult(
        check_name="kl_to_teacher_within_bound",
        passed=result.kl_within_bound,
        metadata={"kl_to_teacher": result.kl_to_teacher, "kl_bound": config.kl_bound},
    )
    yield AssetCheckResult(
        check_name="self_destructs_not_above_base",
        passed=result.self_destructs_held,
        metadata={
            "sd_per_minute_base": result.base_vs_scripted.sd_per_minute,
            "sd_per_minute_rl": result.rl_vs_scripted.sd_per_minute,
        },
    )


def _metadata(result: RLResult) -> dict:
    rl = result.versus_base.players[0]
    return {
        "path": MetadataValue.path(str(result.checkpoint)),
        "updates": result.progress.updates,
        "env_frames": result.progress.frames,
        "env_frames_per_s": round(result.env_frames_per_s, 1),
        "actor_frames_per_s": round(result.actor_frames_per_s, 1),
        "learner_frames_per_s": round(result.learner_frames_per_s, 1),
        "kl_to_teacher": round(result.kl_to_teacher, 5),
        "win_rate_vs_base": rl.win_rate,
        "opponent_games": MetadataValue.json(result.opponent_games),
        "versus_base": MetadataValue.md(result.versus_base.to_markdown()),
        "versus_scripted": MetadataValue.md(_scripted_table(result)),
        "curves": MetadataValue.md(png_markdown(result.curves_png, "RL curves")),
    }


def _scripted_table(result: RLResult) -> str:
    lines = [
        "| policy | win rate vs scripted:3 [95% CI] | net stocks/min | SD/min |",
        "|---|---|---:|---:|",
    ]
    for stats in (result.base_vs_scripted, result.rl_vs_scripted):
        lines.append(
            f"| {stats.name} | {stats.win_rate:.3f} [{stats.ci_low:.3f}, {stats.ci_high:.3f}] "
            f"| {stats.net_stocks_per_minute:+.2f} | {stats.sd_per_minute:.2f} |"
        )
    return "\n".join(lines)
