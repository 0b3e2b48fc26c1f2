"""images stage: editors, grounded masks, the CLIP filter, final shards."""
