"""Partitions of the asset graph."""

from dagster import DynamicPartitionsDefinition

# One partition per replay batch (a folder of .slp files); the key is the batch name.
replay_batches = DynamicPartitionsDefinition(name="replay_batches")

# One partition per experiment (a named training run, e.g. "mewtwo-gru-d18"): every asset from
# training_set to evaluation writes its files under that name, so the UI shows each
# experiment's lineage and history.
experiments = DynamicPartitionsDefinition(name="experiments")
