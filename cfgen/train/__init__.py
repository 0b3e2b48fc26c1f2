"""Stage 3: CF-VLM fine-tuning of CLIP-style models."""
