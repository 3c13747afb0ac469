"""Partitions of the asset graph."""

from dagster import DynamicPartitionsDefinition

# One partition per replay batch (a folder of .slp files); the key is the batch name.
replay_batches = DynamicPartitionsDefinition(name="replay_batches")
