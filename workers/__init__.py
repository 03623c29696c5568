"""Matching workers: read the ingest streams through a consumer group, match events against
every room in the cluster, and write one inbox entry per gateway per batch."""

from oddstream.workers.consumer import Worker

__all__ = ["Worker"]
