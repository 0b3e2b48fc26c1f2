"""cfgen: counterfactual image-text generation and CF-VLM fine-tuning."""
__version__ = "0.1.0"
