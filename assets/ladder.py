"""``ladder``: every exported artifact and the scripted anchors, rated from simulated games.

Unpartitioned on purpose: it reads every experiment's ``policy_int8.onnx`` on disk at once, so
it depends on no single ``policy_int8`` partition. Re-materialize it after exporting artifacts;
only the new players' pairings are played.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from exphil_pipeline.evaluation.ladder import LadderConfig, build_ladder, ratings_png
from exphil_pipeline.orchestration.resources import ExphilStorage
from exphil_pipeline.training.report import png_markdown


@asset(
    group_name="evaluation",
    description="Every artifact under artifacts/*/policy_int8.onnx and the scripted levels play "
    "each pairing not yet in the matches table (run_kind 'ladder') in the simulator; "
    "OpenSkill Plackett-Luce ratings (mu, sigma, ordinal mu - 3 sigma) from all ladder games.",
)
def ladder(
    context: AssetExecutionContext, config: LadderConfig, storage: ExphilStorage
) -> MaterializeResult:
    result = build_ladder(storage.layout, config, context.log.info)
    table = result.to_markdown()
    context.log.info("\n" + table)
    return MaterializeResult(
        metadata={
            "ratings": MetadataValue.md(table),
            "ratings_chart": MetadataValue.md(
                png_markdown(ratings_png(result.standings), "ladder ratings")
            ),
            "players": len(result.standings),
            "games_played": result.games_played,
            "games_total": result.games_total,
            "pairings_played": MetadataValue.json([list(p) for p in result.pairings_played]),
            "matches": MetadataValue.path(str(storage.layout.matches_dir)),
        },
    )
